// Second factors: the login pipeline's gate (SecondFactorGate), enrolment of TOTP and passkeys,
// their checks at login (each code good once, wrong attempts throttled per user), recovery codes,
// a user's own factor list, and the helpdesk reset. Every change and every refusal is audited.
import { BrokerError } from '../../errors.ts';
import { hasRole, type Actor, type AuditService, type Principal, type Role } from '../../broker/index.ts';
import type { FactorSummary, MfaRepository, StoredPasskey } from '../../store/index.ts';
import type { SecondFactorContext, SecondFactorDecision, SecondFactorGate, SecondFactorMethod } from '../second-factor.ts';
import { idpDidMfa, requiredBy, type MfaPolicy } from './policy.ts';
import { currentStep, enrolmentOf, matchTotp, newTotpSecret, openSecret, sealSecret } from './totp.ts';
import { findRecoveryCode, newRecoveryCodes } from './recovery-codes.ts';
import {
  CHALLENGE_TTL_SECONDS,
  authenticationOptions,
  registrationOptions,
  verifyAssertion,
  verifyRegistration,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
  type RelyingParty,
} from './passkeys.ts';

export interface MfaOptions extends MfaPolicy {
  issuer: string;
  maxFailures: number;
  failureWindowSeconds: number;
}

/** What a user (or the helpdesk) sees of someone's factors: never a secret. */
export interface FactorStatus {
  /** The policy requires a second factor for this user. */
  required: boolean;
  totp: { enabled: boolean; createdAt: string | null };
  passkeys: { id: string; name: string; createdAt: string; lastUsedAt: string }[];
  recoveryCodesLeft: number;
}

export interface UserRef {
  id: string;
  role: Role;
  groups: string[];
  displayName?: string;
}

/** How long a TOTP secret being enrolled waits for its first code. */
const ENROL_TTL_SECONDS = 600;

const hasAny = (s: FactorSummary) => !!s.totp || s.passkeys.length > 0;

export class MfaService implements SecondFactorGate {
  private readonly now: () => number;

  constructor(
    private readonly repo: MfaRepository,
    private readonly audit: AuditService,
    private readonly o: MfaOptions,
    /** The key TOTP secrets are sealed with (derived from the tunnel secret). */
    private readonly key: () => Promise<Buffer>,
    now?: () => number,
  ) {
    this.now = now ?? Date.now;
  }

  /** The gate: a second factor when the policy asks for one or the user has one, unless the IdP did MFA. */
  async check(principal: Principal, ctx: SecondFactorContext): Promise<SecondFactorDecision> {
    if (principal.kind !== 'user') return { required: false };
    if (idpDidMfa(this.o, ctx.amr)) return { required: false };
    const s = await this.repo.summary(principal.id);
    if (!hasAny(s)) return requiredBy(this.o, principal) ? { required: true, methods: ['totp', 'webauthn'], enrol: true } : { required: false };
    const methods: SecondFactorMethod[] = [];
    if (s.totp) methods.push('totp');
    if (s.passkeys.length) methods.push('webauthn');
    if (s.recoveryCodesLeft) methods.push('recovery');
    return { required: true, methods, enrol: false };
  }

  async status(user: UserRef): Promise<FactorStatus> {
    const s = await this.repo.summary(user.id);
    return {
      required: requiredBy(this.o, user),
      totp: { enabled: !!s.totp, createdAt: s.totp?.createdAt ?? null },
      passkeys: s.passkeys.map(({ id, name, createdAt, lastUsedAt }) => ({ id, name, createdAt, lastUsedAt })),
      recoveryCodesLeft: s.recoveryCodesLeft,
    };
  }

  /** During a login: may this user enrol a first factor now (they have none)? */
  async mayEnrolAtLogin(user: string): Promise<boolean> {
    return !hasAny(await this.repo.summary(user));
  }

  // ---- TOTP ----------------------------------------------------------------------------------

  /** A new TOTP secret for the user's app (kept sealed until confirmed with a code). */
  async startTotp(user: string): Promise<{ secret: string; otpauthUrl: string; qrCode: string }> {
    if (await this.repo.totpSecret(user)) throw new BrokerError('conflict', 'An authenticator app is set up already; remove it first to set up another.');
    const secret = newTotpSecret();
    await this.repo.setPendingTotp(user, sealSecret(await this.key(), user, secret), ENROL_TTL_SECONDS);
    return enrolmentOf(secret, this.o.issuer, user);
  }

  /** Confirms the TOTP being enrolled with a first code; recovery codes if the user had none. */
  async confirmTotp(actor: Actor, user: string, code: string): Promise<{ recoveryCodes?: string[] }> {
    await this.throttled(user);
    const sealed = await this.repo.pendingTotp(user);
    if (!sealed) throw new BrokerError('conflict', 'No authenticator app is being set up (or it took more than 10 minutes); start again.');
    const step = await matchTotp(openSecret(await this.key(), user, sealed), code.trim(), this.now());
    if (step === null) return this.wrong(actor, user, 'totp', 'code');
    if (!(await this.repo.setTotp(user, sealed, step))) throw new BrokerError('conflict', 'An authenticator app is set up already.');
    await this.repo.dropPendingTotp(user);
    await this.repo.clearFailures(user);
    await this.audit.record(actor, 'user.mfa_enrol', { type: 'user', id: user }, { factor: 'totp' });
    return this.firstRecoveryCodes(actor, user);
  }

  /** A TOTP code at login: right, within one step, and not used before. */
  async verifyTotp(actor: Actor, user: string, code: string): Promise<void> {
    await this.throttled(user);
    const sealed = await this.repo.totpSecret(user);
    if (!sealed) throw new BrokerError('mfa_invalid', 'No authenticator app is set up for this account.', { field: 'code' });
    const step = await matchTotp(openSecret(await this.key(), user, sealed), code.trim(), this.now());
    if (step === null) return this.wrong(actor, user, 'totp', 'code');
    const accepted = await this.repo.acceptTotpStep(user, step);
    if (accepted !== 1) return this.wrong(actor, user, 'totp', 'code', accepted === 0 ? 'code used before' : 'factor removed');
    await this.repo.clearFailures(user);
  }

  async removeTotp(actor: Actor, user: UserRef): Promise<void> {
    await this.keepOneIfRequired(user, 'totp');
    if (!(await this.repo.removeTotp(user.id))) throw new BrokerError('not_found', 'No authenticator app is set up.');
    await this.audit.record(actor, 'user.mfa_remove', { type: 'user', id: user.id }, { factor: 'totp' });
  }

  // ---- Recovery codes ------------------------------------------------------------------------

  async useRecoveryCode(actor: Actor, user: string, code: string): Promise<{ left: number }> {
    await this.throttled(user);
    const id = findRecoveryCode(await this.repo.recoveryCodes(user), code);
    if (!id || !(await this.repo.useRecoveryCode(user, id))) return this.wrong(actor, user, 'recovery', 'code');
    await this.repo.clearFailures(user);
    const left = (await this.repo.summary(user)).recoveryCodesLeft;
    await this.audit.record(actor, 'user.mfa_recovery_used', { type: 'user', id: user }, { left });
    return { left };
  }

  /** New recovery codes replacing the old ones (shown once). */
  async regenerateRecoveryCodes(actor: Actor, user: string): Promise<{ recoveryCodes: string[] }> {
    if (!hasAny(await this.repo.summary(user))) throw new BrokerError('conflict', 'Set up an authenticator app or a passkey first.');
    const { codes, stored } = newRecoveryCodes();
    await this.repo.setRecoveryCodes(user, stored);
    await this.audit.record(actor, 'user.mfa_recovery_codes', { type: 'user', id: user }, { count: codes.length });
    return { recoveryCodes: codes };
  }

  private async firstRecoveryCodes(actor: Actor, user: string): Promise<{ recoveryCodes?: string[] }> {
    if ((await this.repo.summary(user)).recoveryCodesLeft > 0) return {};
    return this.regenerateRecoveryCodes(actor, user);
  }

  // ---- Passkeys ------------------------------------------------------------------------------

  async passkeyRegistrationOptions(user: { id: string; displayName: string }, rp: RelyingParty) {
    const options = await registrationOptions(rp, this.o.issuer, user, await this.repo.passkeys(user.id));
    await this.repo.setChallenge(user.id, { challenge: options.challenge, ceremony: 'register', ...rp }, CHALLENGE_TTL_SECONDS);
    return options;
  }

  async registerPasskey(actor: Actor, user: string, response: RegistrationResponseJSON, name: string, rp: RelyingParty): Promise<{ passkey: FactorStatus['passkeys'][number]; recoveryCodes?: string[] }> {
    const c = await this.repo.takeChallenge(user);
    // A bad registration is a bad input, not a failed login: validation_failed, not counted.
    if (!c || c.ceremony !== 'register' || c.rpID !== rp.rpID || c.origin !== rp.origin) throw new BrokerError('validation_failed', 'This passkey answer is not for a registration started here, or it expired; start again.', { field: 'response' });
    const v = await verifyRegistration(rp, c.challenge, response);
    if (!v) throw new BrokerError('validation_failed', 'The passkey could not be verified.', { field: 'response' });
    const at = new Date(this.now()).toISOString();
    const p: StoredPasskey = { ...v, name: name || 'Passkey', createdAt: at, lastUsedAt: '' };
    if (!(await this.repo.addPasskey(user, p))) throw new BrokerError('already_exists', 'This passkey is registered already.', { field: 'response' });
    await this.audit.record(actor, 'user.mfa_enrol', { type: 'user', id: user }, { factor: 'webauthn', passkey: p.name });
    const out = await this.firstRecoveryCodes(actor, user);
    return { passkey: { id: p.id, name: p.name, createdAt: p.createdAt, lastUsedAt: p.lastUsedAt }, ...out };
  }

  async passkeyAuthenticationOptions(user: string, rp: RelyingParty) {
    const passkeys = await this.repo.passkeys(user);
    if (!passkeys.length) throw new BrokerError('mfa_invalid', 'No passkey is registered for this account.');
    const options = await authenticationOptions(rp, passkeys);
    await this.repo.setChallenge(user, { challenge: options.challenge, ceremony: 'authenticate', ...rp }, CHALLENGE_TTL_SECONDS);
    return options;
  }

  async verifyPasskey(actor: Actor, user: string, response: AuthenticationResponseJSON, rp: RelyingParty): Promise<void> {
    await this.throttled(user);
    const c = await this.repo.takeChallenge(user);
    if (!c || c.ceremony !== 'authenticate' || c.rpID !== rp.rpID || c.origin !== rp.origin) throw new BrokerError('mfa_invalid', 'This passkey answer is not for a login started here, or it expired; try again.', { field: 'response' });
    const p = await this.repo.passkey(user, response.id);
    const counter = p ? await verifyAssertion(rp, c.challenge, p, response) : null;
    if (!p || counter === null) return this.wrong(actor, user, 'webauthn', 'response');
    await this.repo.touchPasskey(user, { ...p, counter, lastUsedAt: new Date(this.now()).toISOString() });
    await this.repo.clearFailures(user);
  }

  async removePasskey(actor: Actor, user: UserRef, id: string): Promise<void> {
    await this.keepOneIfRequired(user, id);
    if (!(await this.repo.removePasskey(user.id, id))) throw new BrokerError('not_found', 'No such passkey.');
    await this.audit.record(actor, 'user.mfa_remove', { type: 'user', id: user.id }, { factor: 'webauthn', passkey: id });
  }

  // ---- Helpdesk ------------------------------------------------------------------------------

  /**
   * Forgets every factor of a user (lost phone): their next login enrols again if the policy
   * requires it. Helpdesk may reset users; only an admin may reset helpdesk or admin accounts.
   */
  async reset(actor: Actor, user: UserRef): Promise<void> {
    const p = actor.principal;
    if (!p || (user.role !== 'user' && !hasRole(p, 'admin'))) {
      const e = new BrokerError('forbidden', 'Only an admin may reset the second factors of helpdesk and admin accounts.');
      await this.audit.refused(actor, 'user.mfa_reset', { type: 'user', id: user.id }, e, { targetRole: user.role });
      throw e;
    }
    const before = await this.repo.summary(user.id);
    await this.repo.removeAll(user.id);
    await this.audit.record(actor, 'user.mfa_reset', { type: 'user', id: user.id }, { totp: !!before.totp, passkeys: before.passkeys.length, recoveryCodes: before.recoveryCodesLeft });
  }

  /** Forgets a deleted user's factors (a new account of the same name starts without them). */
  forget(user: string): Promise<void> {
    return this.repo.removeAll(user);
  }

  // ---- Throttling ----------------------------------------------------------------------------

  private async throttled(user: string): Promise<void> {
    const f = await this.repo.failures(user);
    if (f.count >= this.o.maxFailures && f.remainingMs > 0) {
      throw new BrokerError('login_throttled', 'Too many wrong second-factor attempts; wait before trying again.', { retryAfterSeconds: Math.max(1, Math.ceil(f.remainingMs / 1000)) });
    }
  }

  private async wrong(actor: Actor, user: string, factor: SecondFactorMethod, field: string, reason = 'wrong'): Promise<never> {
    const f = await this.repo.failed(user, this.o.failureWindowSeconds * 1000);
    await this.audit.record(actor, 'auth.mfa_invalid', { type: 'user', id: user }, { factor, reason, failures: f.count }, 'denied');
    throw new BrokerError('mfa_invalid', reason === 'code used before' ? 'This code was used already; wait for the next one.' : undefined, { field });
  }

  /** Refuses removing the last factor of a user the policy requires one of. */
  private async keepOneIfRequired(user: UserRef, removing: 'totp' | string): Promise<void> {
    if (!requiredBy(this.o, user)) return;
    const s = await this.repo.summary(user.id);
    const left = (s.totp && removing !== 'totp' ? 1 : 0) + s.passkeys.filter((p) => p.id !== removing).length;
    if (left === 0) throw new BrokerError('conflict', 'Your account must have a second factor: add another one before removing this one.');
  }
}
