import { BrokerError, type ErrorCode } from '../../errors.ts';

/**
 * A refused login: the code the caller sees, and the reason the audit trail records (which the
 * caller must not see: "unknown user" and "wrong password" answer the same).
 */
export class LoginRefused extends BrokerError {
  constructor(code: ErrorCode, readonly reason: string, opts: { message?: string; cause?: unknown } = {}) {
    super(code, opts.message, opts.cause === undefined ? {} : { cause: opts.cause });
  }
}

export const refuse = (code: ErrorCode, reason: string, cause?: unknown) => new LoginRefused(code, reason, cause === undefined ? {} : { cause });
