// Desktops: filterable table with actions; each asks for confirmation and reports its outcome.
import { useState } from 'preact/hooks';
import { api, enc } from '../api.ts';
import { DESKTOP_STATES, type Desktop, type Host } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll, type ConfirmRequest } from '../ui.tsx';

export function Desktops() {
  const [f, setF] = useState({ pool: '', state: '', host: '', user: '', name: '' });
  const qs = new URLSearchParams(Object.entries(f).filter(([, v]) => v)).toString();
  const { data, error, reload } = usePoll(() => api.get<{ desktops: Desktop[] }>(`/desktops${qs ? `?${qs}` : ''}`), 10_000, [qs], true);
  const { ask, dialog, banner } = useActions();
  const act = (d: Desktop, r: Omit<ConfirmRequest, 'run'> & { run: (v: string) => Promise<string> }) => ask({ ...r, run: async (v) => { const t = await r.run(v); reload(); return t; } });
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  return (
    <section>
      <h1>Desktops</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>Pool <input name="pool" value={f.pool} onInput={set('pool')} /></label>
        <label>State <select name="state" value={f.state} onChange={set('state')}><option value="">any</option>{DESKTOP_STATES.map((s) => <option key={s}>{s}</option>)}</select></label>
        <label>Host <input name="host" value={f.host} onInput={set('host')} /></label>
        <label>User <input name="user" value={f.user} onInput={set('user')} /></label>
        <label>Name <input name="name" value={f.name} onInput={set('name')} /></label>
      </form>
      <ErrorLine error={error} />
      {banner}
      <table class="grid">
        <thead><tr><th>Name</th><th>Pool</th><th>State</th><th>Host</th><th>User</th><th>Image</th><th>Actions</th></tr></thead>
        <tbody>
          {data?.desktops.map((d) => (
            <tr key={d.id} data-desktop={d.name}>
              <td>{d.name}{d.lastError && <div class="muted small" title={d.lastError}>⚠ {d.lastError.slice(0, 60)}</div>}</td>
              <td>{d.pool}</td>
              <td><StateBadge state={d.state} />{!!d.unreachableSince && <div class="bad small" data-testid="unreachable" title="Its host does not answer; it is not handed out until it does.">unreachable since {new Date(d.unreachableSince).toLocaleTimeString()}</div>}</td>
              <td>{d.provider}/{d.host}</td>
              <td>{d.user}</td>
              <td>{d.image}</td>
              <td class="actions">
                <button type="button" onClick={() => act(d, { title: `Refresh ${d.name}`, action: 'Refresh', danger: true, body: <p>Ends the session on it and reverts it to a clean clone of its image. Unsaved work is lost.</p>, run: async () => { await api.post(`/desktops/${enc(d.id)}/refresh`); return `${d.name} is being refreshed.`; } })}>Refresh</button>
                <button type="button" onClick={() => act(d, { title: `Reset ${d.name}`, action: 'Reset', danger: true, body: <p>Power-cycles the desktop. The session stays, unsaved work is lost.</p>, run: async () => { await api.post(`/desktops/${enc(d.id)}/reset`); return `${d.name} was reset.`; } })}>Reset</button>
                <button type="button" onClick={() => act(d, { title: `Delete ${d.name}`, action: 'Delete', danger: true, body: <p>Ends its session and destroys the desktop.</p>, run: async () => { await api.del(`/desktops/${enc(d.id)}`); return `${d.name} is being deleted.`; } })}>Delete</button>
                {d.user ? (
                  <button type="button" onClick={() => act(d, { title: `Unassign ${d.name}`, action: 'Unassign', body: <p>Takes the desktop back from {d.user}.</p>, run: async () => { await api.post(`/desktops/${enc(d.id)}/unassign`); return `${d.name} unassigned from ${d.user}.`; } })}>Unassign</button>
                ) : (
                  <button type="button" onClick={() => act(d, { title: `Assign ${d.name}`, action: 'Assign', body: <p>Gives this ready desktop of a dedicated pool to a user.</p>, input: { label: 'User' }, run: async (u) => { await api.post(`/desktops/${enc(d.id)}/assign`, { user: u }); return `${d.name} assigned to ${u}.`; } })}>Assign</button>
                )}
                <button type="button" onClick={() => act(d, { title: `Snapshot ${d.name}`, action: 'Take snapshot', body: <p>Saves disk and memory. Snapshots are not backups.</p>, input: { label: 'Snapshot name', value: `snap-${new Date().toISOString().slice(0, 16).replace(/[-:T]/g, '')}` }, run: async (n) => { await api.post(`/desktops/${enc(d.id)}/snapshots`, { name: n }); return `Snapshot ${n} of ${d.name} taken.`; } })}>Snapshot</button>
                <button type="button" onClick={async () => {
                  const { snapshots } = await api.get<{ snapshots: { name: string }[] }>(`/desktops/${enc(d.id)}/snapshots`).catch(() => ({ snapshots: [] }));
                  act(d, { title: `Revert ${d.name}`, action: 'Revert', danger: true, body: <p>{snapshots.length ? 'Reverts the desktop to the chosen snapshot; changes since are lost.' : 'This desktop has no snapshots.'}</p>, input: { label: 'Snapshot', options: snapshots.map((s) => s.name) }, run: async (n) => { await api.post(`/desktops/${enc(d.id)}/snapshots/${enc(n)}/revert`); return `${d.name} reverted to ${n}.`; } });
                }}>Revert</button>
                <button type="button" onClick={async () => {
                  const { hosts } = await api.get<{ hosts: Host[] }>('/hosts').catch(() => ({ hosts: [] as Host[] }));
                  const targets = hosts.filter((h) => h.provider === d.provider && h.name !== d.host && !h.maintenance).map((h) => h.name);
                  act(d, { title: `Migrate ${d.name}`, action: 'Migrate', body: <p>Live-migrates the running desktop from {d.host} to another host; the user stays connected.</p>, input: { label: 'Target host', options: targets }, run: async (h) => { const r = await api.post<{ migration: { fromHost: string; toHost: string; durationMs: number } }>(`/desktops/${enc(d.id)}/migrate`, { host: h }); return `${d.name} moved ${r.migration.fromHost} → ${r.migration.toHost} in ${r.migration.durationMs} ms.`; } });
                }}>Migrate</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.desktops.length === 0 && <p class="muted">No desktops match.</p>}
      {dialog}
    </section>
  );
}
