// Logins: users whose logins are locked, throttled or failing, addresses blocked for password
// spraying, and the Unlock a locked-out user calls the helpdesk for.
import { api, enc } from '../api.ts';
import { formatWait } from '../i18n/format.ts';
import type { Lockouts } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';
import { UserFactors } from './UserFactors.tsx';
import { t } from '../i18n/index.ts';

const wait = (s: number) => (s > 0 ? formatWait(s) : '—');

export function Logins() {
  const { data, error, reload } = usePoll(() => api.get<Lockouts>('/auth/lockouts'), 5_000, []);
  const { ask, dialog, banner } = useActions();
  return (
    <section>
      <h1>{t('logins.logins')}</h1>
      <p class="muted">
        {data?.mode === 'hard'
          ? t('logins.modeHard')
          : t('logins.modeProgressive')}
      </p>
      <ErrorLine error={error} />
      {banner}
      <table class="grid">
        <thead><tr><th>{t('logins.user')}</th><th>{t('logins.state')}</th><th>{t('logins.failures')}</th><th>{t('logins.wait')}</th><th>{t('logins.fromAddresses')}</th><th>{t('logins.actions')}</th></tr></thead>
        <tbody>
          {data?.accounts.map((a) => (
            <tr key={a.user} data-user={a.user}>
              <td>{a.user}</td>
              <td><StateBadge state={a.state} /></td>
              <td>{a.failures}</td>
              <td>{wait(a.retryAfterSeconds)}</td>
              <td class="small">{a.addresses.map((x) => t(x.blocked ? 'logins.addressBlocked' : 'logins.addressFailures', { address: x.address, failures: x.failures })).join(', ') || '—'}</td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: t('logins.unlockName', { user: a.user }), action: t('logins.unlock'),
                  body: <p>{t('logins.unlockBody', { user: a.user })}</p>,
                  run: async () => { await api.post(`/users/${enc(a.user)}/unlock`); reload(); return t('loginsM.userWasUnlocked', { user: a.user }); },
                })}>{t('logins.unlock')}</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.accounts.length === 0 && <p class="muted">{t('logins.noUserHasFailedLogins')}</p>}
      <h2>{t('logins.blockedAddresses')}</h2>
      <p class="muted">{t('logins.addressesThatFailedLoginsFor')}</p>
      <table class="grid">
        <thead><tr><th>{t('logins.address')}</th><th>{t('logins.userNamesTried')}</th><th>{t('logins.blockedFor')}</th></tr></thead>
        <tbody>
          {data?.addresses.map((x) => (
            <tr key={x.address} data-address={x.address}><td>{x.address}</td><td>{x.accounts}</td><td>{wait(x.retryAfterSeconds)}</td></tr>
          ))}
        </tbody>
      </table>
      {data && data.addresses.length === 0 && <p class="muted">{t('logins.noAddressIsBlocked')}</p>}
      <UserFactors />
      {dialog}
    </section>
  );
}
