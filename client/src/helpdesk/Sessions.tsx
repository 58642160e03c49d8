// Live sessions: log off, shadow read-only.
import { api, enc, formatDuration } from '../api.ts';
import { navigate } from '../router.tsx';
import type { Desktop, Session } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';

export function Sessions() {
  const { data, error, reload } = usePoll(async () => {
    const [{ sessions }, { desktops }] = await Promise.all([api.get<{ sessions: Session[] }>('/sessions'), api.get<{ desktops: Desktop[] }>('/desktops')]);
    return { sessions, names: new Map(desktops.map((d) => [d.id, d.name])) };
  }, 10_000, [], true);
  const { ask, dialog, banner } = useActions();
  return (
    <section>
      <h1>Sessions</h1>
      <ErrorLine error={error} />
      {banner}
      <table class="grid">
        <thead><tr><th>User</th><th>Desktop</th><th>Pool</th><th>Client address</th><th>State</th><th>Duration</th><th>Actions</th></tr></thead>
        <tbody>
          {data?.sessions.map((s) => (
            <tr key={s.id} data-session={s.id} data-user={s.user}>
              <td>{s.user}</td>
              <td>{data.names.get(s.desktop) ?? s.desktop}</td>
              <td>{s.pool}</td>
              <td>{s.clientAddress}</td>
              <td><StateBadge state={s.state} />{s.state === 'disconnected' && s.disconnectedAt ? <span class="muted small"> for {formatDuration(Date.now() - s.disconnectedAt)}</span> : null}</td>
              <td>{formatDuration(Date.now() - s.createdAt)}</td>
              <td class="actions">
                <button type="button" disabled={s.state !== 'connected'} title={s.state === 'connected' ? 'Watch the screen (read-only)' : 'The user is not connected'} onClick={() => navigate(`/helpdesk/shadow/${enc(s.id)}`)}>Shadow</button>
                <button type="button" class="danger" onClick={() => ask({
                  title: `Log off ${s.user}`, action: 'Log off', danger: true,
                  body: <p>Ends {s.user}'s session on {data?.names.get(s.desktop) ?? s.desktop}. Their apps close and unsaved work is lost; a non-persistent desktop is refreshed.</p>,
                  run: async () => { await api.post(`/sessions/${enc(s.id)}/logoff`); reload(); return `${s.user} was logged off.`; },
                })}>Log off</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.sessions.length === 0 && <p class="muted">No live sessions.</p>}
      {dialog}
    </section>
  );
}
