// Logins: users whose logins are locked, throttled or failing, addresses blocked for password
// spraying, and the Unlock a locked-out user calls the helpdesk for.
import { api, enc, formatWait } from '../api.ts';
import type { Lockouts } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';
import { UserFactors } from './UserFactors.tsx';

const wait = (s: number) => (s > 0 ? formatWait(s) : '—');

export function Logins() {
  const { data, error, reload } = usePoll(() => api.get<Lockouts>('/auth/lockouts'), 5_000, []);
  const { ask, dialog, banner } = useActions();
  return (
    <section>
      <h1>Logins</h1>
      <p class="muted">
        {data?.mode === 'hard'
          ? 'Hard lockout: after too many failed logins an account stays locked, even for the right password, until it expires or you unlock it.'
          : 'Progressive: failed logins make further attempts wait (capped); accounts are never locked. Unlock clears the waits.'}
      </p>
      <ErrorLine error={error} />
      {banner}
      <table class="grid">
        <thead><tr><th>User</th><th>State</th><th>Failures</th><th>Wait</th><th>From addresses</th><th>Actions</th></tr></thead>
        <tbody>
          {data?.accounts.map((a) => (
            <tr key={a.user} data-user={a.user}>
              <td>{a.user}</td>
              <td><StateBadge state={a.state} /></td>
              <td>{a.failures}</td>
              <td>{wait(a.retryAfterSeconds)}</td>
              <td class="small">{a.addresses.map((x) => `${x.address} (${x.failures}${x.blocked ? ', blocked' : ''})`).join(', ') || '—'}</td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: `Unlock ${a.user}`, action: 'Unlock',
                  body: <p>Clears {a.user}'s failed-login count, waits and per-address blocks, so they can log in with their password at once. Only do this once you know it is really them asking.</p>,
                  run: async () => { await api.post(`/users/${enc(a.user)}/unlock`); reload(); return `${a.user} was unlocked.`; },
                })}>Unlock</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.accounts.length === 0 && <p class="muted">No user has failed logins right now.</p>}
      <h2>Blocked addresses</h2>
      <p class="muted">Addresses that failed logins for many different user names (password spraying). The block ends by itself.</p>
      <table class="grid">
        <thead><tr><th>Address</th><th>User names tried</th><th>Blocked for</th></tr></thead>
        <tbody>
          {data?.addresses.map((x) => (
            <tr key={x.address} data-address={x.address}><td>{x.address}</td><td>{x.accounts}</td><td>{wait(x.retryAfterSeconds)}</td></tr>
          ))}
        </tbody>
      </table>
      {data && data.addresses.length === 0 && <p class="muted">No address is blocked.</p>}
      <UserFactors />
      {dialog}
    </section>
  );
}
