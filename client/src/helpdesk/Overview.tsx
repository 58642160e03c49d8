// Overview: per pool, desktops by state and sessions; a chart of the last hours kept in the
// browser from polling (sessionStorage, one sample per poll, 6 h window).
import { api } from '../api.ts';
import type { Pool, Session } from '../types.ts';
import { ErrorLine, usePoll } from '../ui.tsx';

interface Sample { t: number; ready: number; inUse: number; provisioning: number; error: number }
const KEY = 'vdi.history';
const WINDOW_MS = 6 * 3600_000;

function history(): Sample[] {
  try {
    return (JSON.parse(sessionStorage.getItem(KEY) ?? '[]') as Sample[]).filter((s) => s.t > Date.now() - WINDOW_MS);
  } catch {
    return [];
  }
}

function record(pools: Pool[]): Sample[] {
  const sum = (k: keyof Pool['counts']) => pools.reduce((n, p) => n + (p.counts[k] ?? 0), 0);
  const h = history();
  h.push({ t: Date.now(), ready: sum('ready'), inUse: sum('in_use') + sum('assigned'), provisioning: sum('provisioning') + sum('refreshing'), error: sum('error') });
  try {
    sessionStorage.setItem(KEY, JSON.stringify(h.slice(-2000)));
  } catch {
    // storage full: the chart just keeps less
  }
  return h;
}

const SERIES: { key: keyof Omit<Sample, 't'>; label: string; color: string }[] = [
  { key: 'ready', label: 'ready', color: '#2e8b57' },
  { key: 'inUse', label: 'in use', color: '#1e6fd9' },
  { key: 'provisioning', label: 'provisioning / refreshing', color: '#d98e1e' },
  { key: 'error', label: 'error', color: '#c0392b' },
];

export function Chart(props: { samples: Sample[] }) {
  const W = 640, H = 160, P = 24;
  const s = props.samples;
  if (s.length < 2) return <p class="muted">The chart fills in while the console is open (a sample at every change and every 10 s; last 6 hours, kept in this browser tab).</p>;
  const t0 = s[0]!.t, t1 = s.at(-1)!.t;
  const max = Math.max(1, ...s.flatMap((x) => SERIES.map((k) => x[k.key])));
  const x = (t: number) => P + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * P);
  const y = (v: number) => H - P - (v / max) * (H - 2 * P);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Desktops by state over time">
        <line x1={P} y1={H - P} x2={W - P} y2={H - P} stroke="#999" />
        <text x={2} y={y(max) + 4} font-size="10">{max}</text>
        <text x={2} y={H - P + 4} font-size="10">0</text>
        <text x={P} y={H - 6} font-size="10">{new Date(t0).toLocaleTimeString()}</text>
        <text x={W - P} y={H - 6} font-size="10" text-anchor="end">{new Date(t1).toLocaleTimeString()}</text>
        {SERIES.map((k) => (
          <polyline key={k.key} fill="none" stroke={k.color} stroke-width="2" points={s.map((p) => `${x(p.t).toFixed(1)},${y(p[k.key]).toFixed(1)}`).join(' ')} />
        ))}
      </svg>
      <figcaption>{SERIES.map((k) => <span key={k.key} class="legend"><i style={{ background: k.color }} />{k.label}</span>)}</figcaption>
    </figure>
  );
}

export function Overview() {
  const { data, error } = usePoll(async () => {
    const [{ pools }, { sessions }] = await Promise.all([api.get<{ pools: Pool[] }>('/pools'), api.get<{ sessions: Session[] }>('/sessions')]);
    return { pools, sessions, samples: record(pools) };
  }, 10_000, [], true);
  return (
    <section>
      <h1>Overview</h1>
      <ErrorLine error={error} />
      {data && <Chart samples={data.samples} />}
      <table class="grid">
        <thead><tr><th>Pool</th><th>ready</th><th>in use</th><th>assigned</th><th>provisioning</th><th>refreshing</th><th>error</th><th>connected</th><th>disconnected</th><th>status</th></tr></thead>
        <tbody>
          {data?.pools.map((p) => {
            const ss = data.sessions.filter((s) => s.pool === p.name);
            return (
              <tr key={p.name}>
                <td>{p.displayName} <span class="muted">({p.name})</span></td>
                <td>{p.counts.ready}</td><td>{p.counts.in_use}</td><td>{p.counts.assigned}</td><td>{p.counts.provisioning}</td><td>{p.counts.refreshing}</td>
                <td class={p.counts.error ? 'bad' : ''}>{p.counts.error}</td>
                <td>{ss.filter((s) => s.state === 'connected').length}</td><td>{ss.filter((s) => s.state === 'disconnected').length}</td>
                <td>{p.maintenance ? 'maintenance' : p.enabled ? 'enabled' : 'disabled'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
