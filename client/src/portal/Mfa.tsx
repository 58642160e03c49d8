// The second step of a login (docs/authentication.md, "Second factors"): a code from the
// authenticator app, a passkey, or a recovery code; or, for a user who must use a second factor
// and has none yet, setting one up before the login completes. Rendered by Login.tsx when the
// password step answers `mfa_required`.
import { useState } from 'preact/hooks';
import { startAuthentication, startRegistration, type PublicKeyCredentialCreationOptionsJSON, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { ApiError, api, describeError, setCsrf } from '../api.ts';
import type { User } from '../types.ts';
import { t } from '../i18n/index.ts';

export type SecondFactorMethod = 'totp' | 'webauthn' | 'recovery';
export interface MfaChallenge { methods: SecondFactorMethod[]; enrol: boolean }

interface Finished { status: 'ok'; user: User; csrfToken: string; recoveryCodes?: string[] }
interface TotpEnrolment { secret: string; otpauthUrl: string; qrCode: string }
type PasskeyCeremony =
  | { ceremony: 'register'; options: PublicKeyCredentialCreationOptionsJSON }
  | { ceremony: 'authenticate'; options: PublicKeyCredentialRequestOptionsJSON };

type Step = 'choose' | 'totp' | 'recovery' | 'enrol-totp';

const METHODS: readonly SecondFactorMethod[] = ['totp', 'webauthn', 'recovery'];

/**
 * A single sign-on login that came back needing a second factor (the OIDC callback redirects to
 * `/?sso_mfa=totp,webauthn&enrol=1`): the challenge, once (the query is removed), or null.
 */
export function mfaChallengeFromUrl(): MfaChallenge | null {
  const q = new URLSearchParams(location.search);
  const raw = q.get('sso_mfa');
  if (raw === null) return null;
  const methods = raw.split(',').filter((m): m is SecondFactorMethod => (METHODS as readonly string[]).includes(m));
  const enrol = q.get('enrol') === '1';
  q.delete('sso_mfa');
  q.delete('enrol');
  history.replaceState(null, '', location.pathname + (q.size ? `?${q}` : ''));
  return methods.length ? { methods, enrol } : null;
}

/** What went wrong with a passkey, in words (the browser's own errors are terse). */
function passkeyError(e: unknown): string {
  if (e instanceof ApiError) return describeError(e);
  const name = (e as { name?: string } | null)?.name;
  if (name === 'NotAllowedError') return t('mfaM.thePasskeyPromptWasCancelled');
  if (name === 'InvalidStateError') return t('mfaM.thisPasskeyIsRegisteredAlready');
  return t('mfaM.thePasskeyDidNotWork', { v: e instanceof Error ? e.message : String(e) });
}

export function Mfa(props: { challenge: MfaChallenge; kiosk?: boolean; onLogin: (u: User) => void; onCancel: (notice?: string) => void }) {
  const { methods, enrol } = props.challenge;
  const [step, setStep] = useState<Step>(enrol ? 'choose' : methods.includes('totp') ? 'totp' : methods.includes('webauthn') ? 'choose' : 'recovery');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [totp, setTotp] = useState<TotpEnrolment | null>(null);
  const [done, setDone] = useState<Finished | null>(null);

  const finish = (r: Finished) => {
    setCsrf(r.csrfToken);
    // Recovery codes exist only in this answer: show them before going on.
    if (r.recoveryCodes?.length) setDone(r);
    else props.onLogin(r.user);
  };
  const run = async (fn: () => Promise<void>, describe: (e: unknown) => string = describeError) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      // The pending login is gone (expired, or the broker forgot it): back to the password.
      if (e instanceof ApiError && e.code === 'mfa_required') return props.onCancel(t('mfa.tookTooLong'));
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  const submitCode = (path: string) => (e: Event) => {
    e.preventDefault();
    const input = (e.currentTarget as HTMLFormElement).elements.namedItem('code') as HTMLInputElement;
    void run(async () => {
      try {
        finish(await api.post<Finished>(path, { code: input.value.trim() }));
      } catch (err) {
        input.select();
        throw err;
      }
    });
  };
  const passkey = () =>
    run(async () => {
      const c = await api.post<PasskeyCeremony>('/auth/mfa/webauthn/options');
      const response = c.ceremony === 'register' ? await startRegistration({ optionsJSON: c.options }) : await startAuthentication({ optionsJSON: c.options });
      finish(await api.post<Finished>('/auth/mfa/webauthn/verify', { response, ...(c.ceremony === 'register' ? { name: 'Passkey' } : {}) }));
    }, passkeyError);

  if (done) {
    return (
      <Card kiosk={props.kiosk} title={t('mfa.saveYourRecoveryCodes')}>
        <p>{t('mfa.ifYouLoseYourPhone')}</p>
        <ul class="recovery-codes" data-testid="recovery-codes">
          {done.recoveryCodes!.map((c) => <li key={c}><code>{c}</code></li>)}
        </ul>
        <button type="button" class="primary" autofocus onClick={() => props.onLogin(done.user)}>{t('mfa.iSavedThemContinue')}</button>
      </Card>
    );
  }

  const error_ = error && <p class="banner bad" role="alert" data-testid="mfa-error">{error}</p>;
  const back = <button type="button" class="link" onClick={() => props.onCancel()}>{t('mfa.cancelAndLogInAgain')}</button>;

  if (step === 'enrol-totp' && totp) {
    return (
      <Card kiosk={props.kiosk} title={t('mfa.setUpYourAuthenticatorApp')}>
        <p>{t('mfa.scanThisCodeWithAn')}</p>
        <img class="qr" src={totp.qrCode} alt={t('mfa.qrCodeForYourAuthenticator')} width={220} height={220} data-testid="totp-qr" />
        <details><summary>{t('mfa.cannotScanTypeThisKey')}</summary><code class="secret" data-testid="totp-secret">{totp.secret}</code></details>
        <form onSubmit={submitCode('/auth/mfa/totp')}>
          <label>{t('mfa.code')}{' '}<input name="code" inputMode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,8}" required autofocus data-testid="totp-code" /></label>
          <button class="primary" disabled={busy}>{busy ? t('mfa.checking') : t('mfa.confirmAndLogIn')}</button>
        </form>
        {error_}
        {back}
      </Card>
    );
  }

  if (step === 'choose') {
    return (
      <Card kiosk={props.kiosk} title={enrol ? t('mfa.setUp') : t('mfa.confirmItIsYou')}>
        {enrol ? <p>{t('mfa.yourAccountMustUseA')}</p> : <p>{t('mfa.useYourPasskeyToFinish')}</p>}
        <div class="buttons stacked">
          {enrol && (
            <button type="button" class="primary" disabled={busy} data-testid="enrol-totp" onClick={() => void run(async () => {
              setTotp(await api.post<TotpEnrolment>('/auth/mfa/totp/enrol'));
              setStep('enrol-totp');
            })}>{t('mfa.authenticatorApp')}</button>
          )}
          {methods.includes('webauthn') && (
            <button type="button" class={enrol ? '' : 'primary'} disabled={busy} data-testid="use-passkey" onClick={() => void passkey()}>{enrol ? t('mfa.enrolPasskey') : t('mfa.usePasskey')}</button>
          )}
          {!enrol && methods.includes('totp') && <button type="button" class="link" onClick={() => setStep('totp')}>{t('mfa.useMyAuthenticatorAppInstead')}</button>}
          {!enrol && methods.includes('recovery') && <button type="button" class="link" data-testid="use-recovery" onClick={() => setStep('recovery')}>{t('mfa.useARecoveryCode')}</button>}
        </div>
        {error_}
        {back}
      </Card>
    );
  }

  const recovery = step === 'recovery';
  return (
    <Card kiosk={props.kiosk} title={t('mfa.confirmItIsYou')}>
      <form onSubmit={submitCode(recovery ? '/auth/mfa/recovery' : '/auth/mfa/totp')}>
        {recovery ? (
          <label>{t('mfa.recoveryCode')}{' '}<input key="recovery" name="code" autocomplete="off" spellcheck={false} required autofocus data-testid="recovery-code" /></label>
        ) : (
          <label>{t('mfa.codeFromYourAuthenticatorApp')}{' '}<input key="totp" name="code" inputMode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,8}" required autofocus data-testid="totp-code" /></label>
        )}
        <button class="primary" disabled={busy}>{busy ? t('mfa.checking') : t('login.submit')}</button>
      </form>
      {error_}
      <div class="buttons stacked">
        {methods.includes('webauthn') && <button type="button" class="link" data-testid="use-passkey" onClick={() => void passkey()}>{t('mfa.useMyPasskeyInstead')}</button>}
        {recovery && methods.includes('totp') && <button type="button" class="link" onClick={() => setStep('totp')}>{t('mfa.useMyAuthenticatorAppInstead')}</button>}
        {!recovery && methods.includes('recovery') && <button type="button" class="link" data-testid="use-recovery" onClick={() => setStep('recovery')}>{t('mfa.useARecoveryCode')}</button>}
      </div>
      {back}
    </Card>
  );
}

function Card(props: { kiosk?: boolean | undefined; title: string; children: preact.ComponentChildren }) {
  return (
    <main class={props.kiosk ? 'login kiosk' : 'login'}>
      <section class="card mfa" data-testid="mfa-step">
        <h1>{props.title}</h1>
        {props.children}
      </section>
    </main>
  );
}
