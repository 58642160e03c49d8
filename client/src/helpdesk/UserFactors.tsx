// A user's second factors and the reset the helpdesk does when someone lost their phone or
// passkey (audited user.mfa_reset; helpdesk and admin accounts only by an admin).
import { useState } from 'preact/hooks';
import { api, describeError, enc } from '../api.ts';
import type { FactorStatus } from '../portal/Security.tsx';
import { useActions } from '../ui.tsx';

export function UserFactors() {
  const [user, setUser] = useState('');
  const [status, setStatus] = useState<{ user: string; mfa: FactorStatus } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { ask, dialog, banner } = useActions();
  const look = async (id: string) => {
    setError(null);
    try {
      setStatus({ user: id, mfa: (await api.get<{ mfa: FactorStatus }>(`/users/${enc(id)}/mfa`)).mfa });
    } catch (e) {
      setStatus(null);
      setError(describeError(e));
    }
  };
  const s = status?.mfa;
  return (
    <section data-testid="user-factors">
      <h2>Second factors</h2>
      <p class="muted">A user who lost their phone or passkey and has no recovery code left: check who is calling, then reset. They set up a new factor at their next login.</p>
      <form class="inline" onSubmit={(e) => { e.preventDefault(); void look(user.trim().toLowerCase()); }}>
        <label>User <input value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} required data-testid="factors-user" /></label>
        <button type="submit">Show</button>
      </form>
      {error && <p class="banner bad" role="alert">{error}</p>}
      {banner}
      {status && s && (
        <div data-testid="factors-of" data-user={status.user}>
          <p>
            <strong>{status.user}</strong>: {s.totp.enabled ? 'authenticator app' : 'no authenticator app'}, {s.passkeys.length} passkey{s.passkeys.length === 1 ? '' : 's'}, {s.recoveryCodesLeft} recovery code{s.recoveryCodesLeft === 1 ? '' : 's'} left{s.required ? ' (a second factor is required for this account)' : ''}.
          </p>
          <button type="button" class="danger" data-testid="reset-factors" disabled={!s.totp.enabled && s.passkeys.length === 0 && s.recoveryCodesLeft === 0} onClick={() => ask({
            title: `Reset ${status.user}'s second factors`, action: 'Reset', danger: true,
            body: <p>Removes {status.user}'s authenticator app, passkeys and recovery codes. Only do this once you know it is really them asking.</p>,
            run: async () => { await api.del(`/users/${enc(status.user)}/mfa`); await look(status.user); return `${status.user}'s second factors were reset.`; },
          })}>Reset second factors</button>
        </div>
      )}
      {dialog}
    </section>
  );
}
