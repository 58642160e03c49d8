// The user's own second factors: authenticator app, passkeys, recovery codes (shown once when
// made). Removing the last factor is refused by the broker when the user's role requires one.
import { useState } from 'preact/hooks';
import { startRegistration, type PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { api, describeError, enc } from '../api.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';
import { formatDate } from '../i18n/format.ts';

export interface FactorStatus {
  required: boolean;
  totp: { enabled: boolean; createdAt: string | null };
  passkeys: { id: string; name: string; createdAt: string; lastUsedAt: string }[];
  recoveryCodesLeft: number;
}

const day = (iso: string | null) => (iso ? formatDate(iso) : '—');

export function Security() {
  const { data, error, reload } = usePoll(() => api.get<{ mfa: FactorStatus }>('/me/mfa').then((r) => r.mfa), 60_000, []);
  const { ask, dialog, banner } = useActions();
  const [totp, setTotp] = useState<{ secret: string; qrCode: string } | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const act = async (fn: () => Promise<void>) => {
    setBusy(true);
    setProblem(null);
    try {
      await fn();
    } catch (e) {
      const name = (e as { name?: string } | null)?.name;
      setProblem(name === 'NotAllowedError' ? t('security.passkeyCancelled') : describeError(e));
    } finally {
      setBusy(false);
      reload();
    }
  };

  return (
    <main class="page">
      <h1>{t('security.signInSecurity')}</h1>
      <p class="muted">
        {data?.required ? t('security.required') : t('security.why')}
      </p>
      <ErrorLine error={error ?? problem} />
      {banner}
      {codes && (
        <section class="tile" data-testid="new-recovery-codes">
          <h2>{t('security.yourRecoveryCodes')}</h2>
          <p>{t('security.eachCodeLogsYouIn')}</p>
          <ul class="recovery-codes">{codes.map((c) => <li key={c}><code>{c}</code></li>)}</ul>
          <button type="button" onClick={() => setCodes(null)}>{t('security.iSavedThem')}</button>
        </section>
      )}

      <section class="tile" data-testid="factor-totp">
        <h2>{t('security.authenticatorApp')}</h2>
        {data?.totp.enabled ? (
          <p>{t('security.setUpOnDay', { day: day(data.totp.createdAt) })}{' '}
            <button type="button" class="danger" disabled={busy} onClick={() => ask({
              title: t('security.removeTheAuthenticatorApp'), action: t('security.remove'), danger: true,
              body: <p>{t('security.codesFromYourAppWill')}</p>,
              run: async () => { await api.del('/me/mfa/totp'); reload(); return t('securityM.theAuthenticatorAppWasRemoved'); },
            })}>{t('security.remove')}</button>
          </p>
        ) : totp ? (
          <form onSubmit={(e) => {
            e.preventDefault();
            const code = String(new FormData(e.currentTarget).get('code') ?? '');
            void act(async () => {
              const r = await api.post<{ recoveryCodes?: string[] }>('/me/mfa/totp/confirm', { code });
              setTotp(null);
              if (r.recoveryCodes) setCodes(r.recoveryCodes);
            });
          }}>
            <p>{t('security.scanTheCodeWithYour')}</p>
            <img class="qr" src={totp.qrCode} alt={t('security.qrCodeForYourAuthenticator')} width={220} height={220} />
            <details><summary>{t('security.cannotScanTypeThisKey')}</summary><code class="secret">{totp.secret}</code></details>
            <label>{t('security.code')}{' '}<input name="code" inputMode="numeric" autocomplete="one-time-code" required /></label>
            <button class="primary" disabled={busy}>{t('security.confirm')}</button>
          </form>
        ) : (
          <button type="button" class="primary" disabled={busy || !data} onClick={() => void act(async () => setTotp(await api.post('/me/mfa/totp')))}>{t('security.setUpAnAuthenticatorApp')}</button>
        )}
      </section>

      <section class="tile" data-testid="factor-passkeys">
        <h2>{t('security.passkeys')}</h2>
        {data && data.passkeys.length === 0 && <p class="muted">{t('security.noPasskeyYet')}</p>}
        <ul class="plain">
          {data?.passkeys.map((p) => (
            <li key={p.id} data-passkey={p.name}>
              {p.name} <span class="muted small">{t('security.addedLastUsed', { added: day(p.createdAt), used: day(p.lastUsedAt || null) })}</span>{' '}
              <button type="button" class="danger" onClick={() => ask({
                title: t('securityM.removeThePasskeyName', { name: p.name }), action: t('security.remove'), danger: true,
                body: <p>{t('security.itWillNoLongerLog')}</p>,
                run: async () => { await api.del(`/me/mfa/passkeys/${enc(p.id)}`); reload(); return t('securityM.thePasskeyWasRemoved'); },
              })}>{t('security.remove')}</button>
            </li>
          ))}
        </ul>
        <form onSubmit={(e) => {
          e.preventDefault();
          const name = String(new FormData(e.currentTarget).get('name') ?? '').trim() || 'Passkey';
          void act(async () => {
            const c = await api.post<{ options: PublicKeyCredentialCreationOptionsJSON }>('/me/mfa/webauthn/options');
            const response = await startRegistration({ optionsJSON: c.options });
            const r = await api.post<{ recoveryCodes?: string[] }>('/me/mfa/webauthn', { response, name });
            if (r.recoveryCodes) setCodes(r.recoveryCodes);
          });
        }}>
          <label>{t('security.name')}{' '}<input name="name" maxLength={60} placeholder={t('security.eGWorkLaptop')} /></label>
          <button class="primary" disabled={busy || !data}>{t('security.addAPasskey')}</button>
        </form>
      </section>

      <section class="tile" data-testid="factor-recovery">
        <h2>{t('security.recoveryCodes')}</h2>
        <p>{data ? t('security.codesLeft', { count: data.recoveryCodesLeft }) : '…'}</p>
        <button type="button" disabled={busy || !data || (!data.totp.enabled && data.passkeys.length === 0)} onClick={() => ask({
          title: t('security.newRecoveryCodes'), action: t('security.makeNewCodes'),
          body: <p>{t('security.yourOldRecoveryCodesStop')}</p>,
          run: async () => { const r = await api.post<{ recoveryCodes: string[] }>('/me/mfa/recovery-codes'); setCodes(r.recoveryCodes); reload(); return t('securityM.newRecoveryCodesWereMade'); },
        })}>{t('security.makeNewCodes')}</button>
      </section>
      {dialog}
    </main>
  );
}
