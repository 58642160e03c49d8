// Devices: enrolled thin clients (filter by location and state; rename, move, revoke) and, for
// admins, enrolment codes (made here, shown once).
import { useEffect, useState } from 'preact/hooks';
import { api, describeError, enc } from '../api.ts';
import type { Me } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';

interface DeviceRow {
  id: string; name: string; location: string; mode: string; state: 'active' | 'revoked'; displayPool: string | null; idleSeconds: number;
  createdAt: number; lastSeenAt: number; lastSeenAddress: string; user: string | null; revokedAt: number | null; revokedBy: string | null;
}
interface CodeRow { id: string; location: string; mode: string; name: string | null; uses: number; usesLeft: number; expiresAt: number; createdBy: string }

const MODES = ['personal-kiosk', 'shared-lab', 'room-display'];
const when = (ms: number) => (ms ? new Date(ms).toLocaleString() : '—');

function NewCode(props: { onMade: () => void }) {
  const [made, setMade] = useState<{ code: string; url: string; location: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [mode, setMode] = useState('personal-kiosk');
  return (
    <form
      class="inline-form"
      data-testid="new-code"
      onSubmit={async (e) => {
        e.preventDefault();
        const f = new FormData(e.currentTarget);
        const num = (k: string) => (String(f.get(k) ?? '') === '' ? undefined : Number(f.get(k)));
        const text = (k: string) => String(f.get(k) ?? '').trim() || undefined;
        setError(null);
        try {
          const r = await api.post<{ code: string; enrolment: CodeRow }>('/devices/enrolment-codes', {
            location: text('location'), mode, name: text('name'), displayPool: text('displayPool'),
            uses: num('uses') ?? 1, expiresInSeconds: (num('hours') ?? 24) * 3600, idleSeconds: num('idleSeconds'),
          });
          setMade({ code: r.code, url: `${location.origin}/enroll?code=${enc(r.code)}`, location: r.enrolment.location });
          props.onMade();
        } catch (err) {
          setError(describeError(err));
        }
      }}
    >
      <h2>New enrolment code</h2>
      <label>Location <input name="location" required pattern="[a-z0-9][a-z0-9._\-]*" placeholder="lab-1" /></label>
      <label>Mode <select value={mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value)}>{MODES.map((m) => <option key={m}>{m}</option>)}</select></label>
      <label>Name <input name="name" placeholder="optional" /></label>
      {mode === 'room-display' && <label>Pool shown <input name="displayPool" required /></label>}
      {mode === 'shared-lab' && <label>Idle logoff (s) <input name="idleSeconds" type="number" min={0} max={86400} placeholder="300" /></label>}
      <label>Uses <input name="uses" type="number" min={1} max={1000} defaultValue="1" /></label>
      <label>Valid for (hours) <input name="hours" type="number" min={1} max={720} defaultValue="24" /></label>
      <button class="primary">Make code</button>
      <ErrorLine error={error} />
      {made && (
        <p class="banner ok" role="status" data-testid="code-made">
          Code for {made.location}: <code data-testid="code">{made.code}</code> — shown only now. On the kiosk open <code>{made.url}</code> or type it at /enroll.
        </p>
      )}
    </form>
  );
}

export function Devices() {
  const [location_, setLocation] = useState('');
  const [state, setState] = useState('');
  const [isAdmin, setAdmin] = useState(false);
  useEffect(() => void api.get<Me>('/me').then((me) => setAdmin(me.user.role === 'admin'), () => undefined), []);
  const q = new URLSearchParams({ ...(location_ ? { location: location_ } : {}), ...(state ? { state } : {}) }).toString();
  const { data, error, reload } = usePoll(() => api.get<{ devices: DeviceRow[] }>(`/devices${q ? `?${q}` : ''}`), 5_000, [q]);
  const codes = usePoll(() => (isAdmin ? api.get<{ enrolments: CodeRow[] }>('/devices/enrolment-codes') : Promise.resolve({ enrolments: [] })), 10_000, [isAdmin]);
  const { ask, dialog, banner } = useActions();
  return (
    <section>
      <h1>Devices</h1>
      <p class="muted">Enrolled thin clients. Revoking one sends it back to the enrolment page at its next request.</p>
      <div class="filters">
        <label>Location <input value={location_} placeholder="all" onChange={(e) => setLocation((e.target as HTMLInputElement).value.trim())} /></label>
        <label>State <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}><option value="">all</option><option>active</option><option>revoked</option></select></label>
      </div>
      <ErrorLine error={error} />
      {banner}
      <table class="grid" data-testid="devices">
        <thead><tr><th>Name</th><th>Location</th><th>Mode</th><th>State</th><th>User now</th><th>Last seen</th><th>Actions</th></tr></thead>
        <tbody>
          {data?.devices.map((d) => (
            <tr key={d.id} data-device={d.id}>
              <td>{d.name}</td>
              <td>{d.location}</td>
              <td>{d.mode}{d.displayPool ? ` (${d.displayPool})` : ''}</td>
              <td><StateBadge state={d.state} /></td>
              <td>{d.user ?? '—'}</td>
              <td class="small">{when(d.lastSeenAt)} {d.lastSeenAddress}</td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: `Rename ${d.name}`, action: 'Rename', body: <p>The name the helpdesk and the session list show.</p>, input: { label: 'New name', value: d.name },
                  run: async (name) => { await api.patch(`/devices/${enc(d.id)}`, { name }); reload(); return `Renamed to ${name}.`; },
                })}>Rename</button>
                <button type="button" onClick={() => ask({
                  title: `Move ${d.name}`, action: 'Move', body: <p>Pools restricted to locations follow the device's location at its next launch.</p>, input: { label: 'Location', value: d.location },
                  run: async (loc) => { await api.patch(`/devices/${enc(d.id)}`, { location: loc }); reload(); return `${d.name} moved to ${loc}.`; },
                })}>Move</button>
                {d.state === 'active' && (
                  <button type="button" class="danger" onClick={() => ask({
                    title: `Revoke ${d.name}`, action: 'Revoke', danger: true,
                    body: <p>{d.name} stops working at once and shows the enrolment page; it needs a new code to come back.</p>,
                    run: async () => { await api.post(`/devices/${enc(d.id)}/revoke`); reload(); return `${d.name} was revoked.`; },
                  })}>Revoke</button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.devices.length === 0 && <p class="muted">No device matches.</p>}
      {isAdmin && (
        <>
          <NewCode onMade={codes.reload} />
          <h2>Enrolment codes</h2>
          <table class="grid">
            <thead><tr><th>Location</th><th>Mode</th><th>Name</th><th>Uses left</th><th>Expires</th><th>Made by</th><th /></tr></thead>
            <tbody>
              {codes.data?.enrolments.map((c) => (
                <tr key={c.id}>
                  <td>{c.location}</td><td>{c.mode}</td><td>{c.name ?? '—'}</td><td>{c.usesLeft} / {c.uses}</td><td>{when(c.expiresAt)}</td><td>{c.createdBy}</td>
                  <td><button type="button" onClick={() => ask({ title: 'Withdraw code', action: 'Withdraw', danger: true, body: <p>The code stops working now.</p>, run: async () => { await api.del(`/devices/enrolment-codes/${enc(c.id)}`); codes.reload(); return 'Code withdrawn.'; } })}>Withdraw</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {dialog}
    </section>
  );
}
