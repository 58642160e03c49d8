// Every error the broker reports has a stable code, an HTTP status and a default message,
// all declared here. docs/errors.md lists the same codes; test/unit/errors.test.ts keeps
// the two in step.

export const ERROR_CODES = {
  validation_failed: { status: 400, message: 'The request is not valid.' },
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  unauthenticated: { status: 401, message: 'Log in first.' },
  invalid_credentials: { status: 401, message: 'Wrong user name or password.' },
  account_locked: { status: 429, message: 'This account is locked after too many failed logins; try again later or ask the helpdesk.' },
  login_throttled: { status: 429, message: 'Too many failed logins; wait before trying again.' },
  too_many_attempts: { status: 429, message: 'Too many failed logins from this address; try again later.' },
  account_disabled: { status: 403, message: 'This account is disabled or expired in the directory; ask the helpdesk.' },
  password_expired: { status: 403, message: 'Your password has expired; change it (for example at a Windows sign-in) and log in again.' },
  password_change_required: { status: 403, message: 'You must change your password before logging in; change it and log in again.' },
  directory_unavailable: { status: 503, message: 'The directory cannot be reached to check your login; try again shortly.' },
  mfa_required: { status: 401, message: 'A second factor is required to finish this login.' },
  mfa_invalid: { status: 401, message: 'The second factor is not valid.' },
  sso_state_invalid: { status: 400, message: 'This single sign-on answer is not for a login started here, or was already used; start the login again.' },
  sso_failed: { status: 401, message: 'The identity provider did not confirm who you are; try again or ask the helpdesk.' },
  device_unknown: { status: 401, message: 'This device is not enrolled (its credential is unknown); enrol it again with a code from an admin.' },
  device_revoked: { status: 403, message: 'This device was revoked by the helpdesk; enrol it again with a new code.' },
  device_required: { status: 403, message: 'Kiosk logins need an enrolled device here; enrol this device with a code from an admin.' },
  enrolment_code_invalid: { status: 400, message: 'This enrolment code is unknown, expired or used up.' },
  pool_location_restricted: { status: 403, message: 'This pool can only be used from enrolled devices at its locations.' },
  csrf_invalid: { status: 403, message: 'Missing or invalid CSRF token.' },
  forbidden: { status: 403, message: 'Your role does not allow this.' },
  not_found: { status: 404, message: 'Not found.' },
  already_exists: { status: 409, message: 'It already exists.' },
  conflict: { status: 409, message: 'The request conflicts with the current state.' },
  shadow_consent_pending: { status: 409, message: 'Waiting for the user to allow shadowing.' },
  shadow_denied: { status: 403, message: 'The user declined to be shadowed.' },
  shadow_consent_timeout: { status: 409, message: 'The user did not answer in time; shadowing was not allowed.' },
  illegal_transition: { status: 409, message: 'The desktop cannot make that state change now.' },
  desktop_in_use: { status: 409, message: 'The desktop has a live session; log the user off first.' },
  pool_disabled: { status: 409, message: 'The pool is disabled.' },
  pool_maintenance: { status: 503, message: 'The pool is in maintenance; try again later.' },
  desktop_unavailable: { status: 503, message: 'Your desktop is out of service; the helpdesk has been alerted.' },
  pool_exhausted: { status: 503, message: 'No desktop is free in this pool and it is at its maximum size.' },
  mac_exhausted: { status: 503, message: 'The MAC address range is exhausted.' },
  name_exhausted: { status: 503, message: "The pool's naming pattern has no free name left." },
  bad_path: { status: 400, message: 'The file path is not allowed: relative to your folder, no .., no symbolic links, names of at most 255 bytes without \\ : * ? " < > | or control characters.' },
  quota_exceeded: { status: 507, message: 'Your file storage is over its limit; delete files first.' },
  share_unavailable: { status: 503, message: 'Your file share cannot be reached; the helpdesk has been alerted.' },
  not_supported: { status: 501, message: 'The desktop provider does not support this operation.' },
  guacd_required: { status: 409, message: 'RDP consoles need an external guacd (guacd.host); this broker streams VNC only.' },
  provider_error: { status: 502, message: 'The hypervisor reported an error.' },
  redis_unavailable: { status: 503, message: 'The broker cannot reach its state store; try again shortly.' },
  not_ready: { status: 503, message: 'The broker is starting or shutting down.' },
  route_not_found: { status: 404, message: 'No such API route.' },
  internal_error: { status: 500, message: 'Internal error.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BrokerError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly field?: string;
  readonly retryAfterSeconds?: number;

  constructor(code: ErrorCode, message?: string, opts: { field?: string; retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message ?? ERROR_CODES[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BrokerError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    if (opts.field !== undefined) this.field = opts.field;
    if (opts.retryAfterSeconds !== undefined) this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  toJSON(): { error: { code: ErrorCode; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}

export function isErrorCode(s: string): s is ErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}

// Redis answers with these error prefixes when it cannot serve now but will again by itself:
// loading its data set, a replica that cannot take writes (a failover in progress), out of
// memory, its primary or cluster down, busy running a script, unable to persist.
const REDIS_TRANSIENT_REPLY = /^(LOADING|READONLY|OOM|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF)\b/;
// ioredis' own messages when the connection is missing, stalled or gone.
const REDIS_CLIENT_MESSAGES = [
  'Command timed out',
  "Stream isn't writeable",
  'Connection is closed',
  // A pipeline (auto-pipelining) cut by a connection loss, e.g. a Sentinel failover.
  'Command aborted due to connection close',
  'Socket timeout',
  'Redis is unavailable',
  'Failed to refresh slots cache',
  'None of startup nodes is available',
];
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * True for every way Redis can fail to serve a command: refused, reset, timed out (a stalled
 * server), loading, a read-only replica, out of memory, primary or cluster down, connection
 * closed, retries exhausted. The broker answers these with 503 redis_unavailable, never 500.
 * Follows `cause` (wrapped errors) a few levels deep.
 */
export function isRedisUnavailable(err: unknown, depth = 0): boolean {
  if (!(err instanceof Error) || depth > 4) return false;
  const m = err.message;
  const code = (err as { code?: unknown }).code;
  if (
    err.name === 'MaxRetriesPerRequestError' ||
    err.name === 'ClusterAllFailedError' ||
    REDIS_TRANSIENT_REPLY.test(m) ||
    REDIS_CLIENT_MESSAGES.some((s) => m.includes(s)) ||
    (typeof code === 'string' && NETWORK_CODES.has(code)) ||
    /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT)\b/.test(m)
  ) {
    return true;
  }
  return isRedisUnavailable(err.cause, depth + 1);
}
