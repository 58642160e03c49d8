// The user's own second factors: authenticator app, passkeys, recovery codes (shown once when
// made). Removing the last factor is refused by the broker when the user's role requires one.
import { useState } from 'preact/hooks';
import { startRegistration, type PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { api, describeError, enc } from '../api.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';

export interface FactorStatus {
  required: boolean;
  totp: { enabled: boolean; createdAt: string | null };
  passkeys: { id: string; name: string; createdAt: string; lastUsedAt: string }[];
  recoveryCodesLeft: number;
}

const day = (iso: string | null) => (iso ? new Date(iso).toLocaleDateString() : '—');

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
      setProblem(name === 'NotAllowedError' ? 'The passkey prompt was cancelled or timed out.' : describeError(e));
    } finally {
      setBusy(false);
      reload();
    }
  };

  return (
    <main class="page">
      <h1>Sign-in security</h1>
      <p class="muted">
        {data?.required ? 'Your account must use a second factor at every login.' : 'A second factor protects your account if your password leaks; once set up, it is asked at every login.'}
      </p>
      <ErrorLine error={error ?? problem} />
      {banner}
      {codes && (
        <section class="tile" data-testid="new-recovery-codes">
          <h2>Your recovery codes</h2>
          <p>Each code logs you in once if you lose your phone or passkey. They are shown only now: save them.</p>
          <ul class="recovery-codes">{codes.map((c) => <li key={c}><code>{c}</code></li>)}</ul>
          <button type="button" onClick={() => setCodes(null)}>I saved them</button>
        </section>
      )}

      <section class="tile" data-testid="factor-totp">
        <h2>Authenticator app</h2>
        {data?.totp.enabled ? (
          <p>Set up on {day(data.totp.createdAt)}.{' '}
            <button type="button" class="danger" disabled={busy} onClick={() => ask({
              title: 'Remove the authenticator app', action: 'Remove', danger: true,
              body: <p>Codes from your app will no longer log you in.</p>,
              run: async () => { await api.del('/me/mfa/totp'); reload(); return 'The authenticator app was removed.'; },
            })}>Remove</button>
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
            <p>Scan the code with your app, then type the 6-digit code it shows.</p>
            <img class="qr" src={totp.qrCode} alt="QR code for your authenticator app" width={220} height={220} />
            <details><summary>Cannot scan? Type this key instead</summary><code class="secret">{totp.secret}</code></details>
            <label>Code <input name="code" inputMode="numeric" autocomplete="one-time-code" required /></label>
            <button class="primary" disabled={busy}>Confirm</button>
          </form>
        ) : (
          <button type="button" class="primary" disabled={busy || !data} onClick={() => void act(async () => setTotp(await api.post('/me/mfa/totp')))}>Set up an authenticator app</button>
        )}
      </section>

      <section class="tile" data-testid="factor-passkeys">
        <h2>Passkeys</h2>
        {data && data.passkeys.length === 0 && <p class="muted">No passkey yet.</p>}
        <ul class="plain">
          {data?.passkeys.map((p) => (
            <li key={p.id} data-passkey={p.name}>
              {p.name} <span class="muted small">added {day(p.createdAt)}, last used {day(p.lastUsedAt || null)}</span>{' '}
              <button type="button" class="danger" onClick={() => ask({
                title: `Remove the passkey "${p.name}"`, action: 'Remove', danger: true,
                body: <p>It will no longer log you in.</p>,
                run: async () => { await api.del(`/me/mfa/passkeys/${enc(p.id)}`); reload(); return 'The passkey was removed.'; },
              })}>Remove</button>
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
          <label>Name <input name="name" maxLength={60} placeholder="e.g. Work laptop" /></label>
          <button class="primary" disabled={busy || !data}>Add a passkey</button>
        </form>
      </section>

      <section class="tile" data-testid="factor-recovery">
        <h2>Recovery codes</h2>
        <p>{data ? `${data.recoveryCodesLeft} unused code${data.recoveryCodesLeft === 1 ? '' : 's'} left.` : '…'}</p>
        <button type="button" disabled={busy || !data || (!data.totp.enabled && data.passkeys.length === 0)} onClick={() => ask({
          title: 'New recovery codes', action: 'Make new codes',
          body: <p>Your old recovery codes stop working at once.</p>,
          run: async () => { const r = await api.post<{ recoveryCodes: string[] }>('/me/mfa/recovery-codes'); setCodes(r.recoveryCodes); reload(); return 'New recovery codes were made.'; },
        })}>Make new codes</button>
      </section>
      {dialog}
    </main>
  );
}
