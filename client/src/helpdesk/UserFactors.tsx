// A user's second factors and the reset the helpdesk does when someone lost their phone or
// passkey (audited user.mfa_reset; helpdesk and admin accounts only by an admin).
import { useState } from 'preact/hooks';
import { api, describeError, enc } from '../api.ts';
import type { FactorStatus } from '../portal/Security.tsx';
import { useActions } from '../ui.tsx';
import { t, tParts } from '../i18n/index.ts';

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
      <h2>{t('userfactors.secondFactors')}</h2>
      <p class="muted">{t('userfactors.aUserWhoLostTheir')}</p>
      <form class="inline" onSubmit={(e) => { e.preventDefault(); void look(user.trim().toLowerCase()); }}>
        <label>{t('userfactors.user')}{' '}<input value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} required data-testid="factors-user" /></label>
        <button type="submit">{t('userfactors.show')}</button>
      </form>
      {error && <p class="banner bad" role="alert">{error}</p>}
      {banner}
      {status && s && (
        <div data-testid="factors-of" data-user={status.user}>
          <p>
            {tParts('userfactors.summary', { user: <strong>{status.user}</strong> }, {
              app: s.totp.enabled ? t('userfactors.app') : t('userfactors.noApp'),
              passkeys: t('userfactors.passkeys', { count: s.passkeys.length }),
              codes: t('userfactors.codesLeft', { count: s.recoveryCodesLeft }),
              required: s.required ? t('userfactors.required') : '',
            })}
          </p>
          <button type="button" class="danger" data-testid="reset-factors" disabled={!s.totp.enabled && s.passkeys.length === 0 && s.recoveryCodesLeft === 0} onClick={() => ask({
            title: t('userfactorsM.resetUserSSecondFactors', { user: status.user }), action: t('userfactors.reset'), danger: true,
            body: <p>{t('userfactors.resetBody', { user: status.user })}</p>,
            run: async () => { await api.del(`/users/${enc(status.user)}/mfa`); await look(status.user); return t('userfactorsM.userSSecondFactorsWere', { user: status.user }); },
          })}>{t('userfactors.resetSecondFactors')}</button>
        </div>
      )}
      {dialog}
    </section>
  );
}
