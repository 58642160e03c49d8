// Overview: alerts (computed by the broker: pools out of spares, desktops in error, shares
// unavailable), a chart of the last 24 hours (kept by the broker: one sample a minute per pool,
// the same for every helpdesk and across reloads), and per pool desktops by state and sessions.
import { api } from '../api.ts';
import type { Pool, Session } from '../types.ts';
import { ErrorLine, usePoll } from '../ui.tsx';
import { useT } from '../i18n/index.ts';
import { formatTime } from '../i18n/format.ts';

interface Sample { t: number; ready: number; inUse: number; provisioning: number; error: number; connected: number; disconnected: number }
interface History { from: number; to: number; total: Sample[]; pools: { pool: string; samples: Sample[] }[] }
interface Alert { id: string; kind: string; severity: 'warning' | 'critical'; target: { type: string; id: string }; message: string }

const SERIES: { key: keyof Omit<Sample, 't'>; label: string; color: string }[] = [
  { key: 'ready', label: 'state.ready', color: '#2e8b57' },
  { key: 'inUse', label: 'state.in_use', color: '#1e6fd9' },
  { key: 'provisioning', label: 'overview.provRefresh', color: '#d98e1e' },
  { key: 'error', label: 'state.error', color: '#c0392b' },
  { key: 'connected', label: 'overview.sessionsConnected', color: '#7b3fb3' },
];

export function Chart(props: { samples: Sample[] }) {
  const W = 640, H = 160, P = 24;
  const t = useT();
  const s = props.samples;
  if (s.length < 1) return <p class="muted" data-testid="history-empty">{t('overview.noHistory')}</p>;
  const t0 = Math.min(s[0]!.t, s.at(-1)!.t - 60_000), t1 = s.at(-1)!.t;
  const max = Math.max(1, ...s.flatMap((x) => SERIES.map((k) => x[k.key])));
  const x = (t: number) => P + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * P);
  const y = (v: number) => H - P - (v / max) * (H - 2 * P);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={t('overview.chart', { count: Math.max(1, Math.round((t1 - t0) / 60_000)), samples: s.length })} data-samples={s.length} data-from={s[0]!.t}>
        <line x1={P} y1={H - P} x2={W - P} y2={H - P} stroke="#999" />
        <text x={2} y={y(max) + 4} font-size="10">{max}</text>
        <text x={2} y={H - P + 4} font-size="10">0</text>
        <text x={P} y={H - 6} font-size="10">{formatTime(t0)}</text>
        <text x={W - P} y={H - 6} font-size="10" text-anchor="end">{formatTime(t1)}</text>
        {SERIES.map((k) => (
          s.length === 1
            ? <circle key={k.key} cx={x(s[0]!.t)} cy={y(s[0]![k.key])} r="3" fill={k.color} />
            : <polyline key={k.key} fill="none" stroke={k.color} stroke-width="2" points={s.map((p) => `${x(p.t).toFixed(1)},${y(p[k.key]).toFixed(1)}`).join(' ')} />
        ))}
      </svg>
      <figcaption>{SERIES.map((k) => <span key={k.key} class="legend"><i style={{ background: k.color }} />{t(k.label)}</span>)}</figcaption>
    </figure>
  );
}

export function Overview() {
  const { data, error } = usePoll(async () => {
    const [{ pools }, { sessions }, { alerts }] = await Promise.all([api.get<{ pools: Pool[] }>('/pools'), api.get<{ sessions: Session[] }>('/sessions'), api.get<{ alerts: Alert[] }>('/alerts')]);
    return { pools, sessions, alerts };
  }, 10_000, [], true);
  // The history changes once a minute: polled on its own, not on every live snapshot.
  const history = usePoll(() => api.get<History>('/stats/history?hours=24'), 60_000, []);
  const t = useT();
  return (
    <section>
      <h1>{t('nav.overview')}</h1>
      <ErrorLine error={error ?? history.error} />
      {data && (
        <section class="alerts" aria-labelledby="alerts-title" data-testid="alerts">
          <h2 id="alerts-title">{t('overview.alerts')}</h2>
          {data.alerts.length === 0 ? <p class="muted">{t('overview.noAlerts')}</p> : (
            <ul>
              {data.alerts.map((a) => (
                <li key={a.id} class={`alert ${a.severity === 'critical' ? 'bad' : 'warn'}`} data-alert={a.kind} data-target={a.target.id}>
                  <strong>{a.severity === 'critical' ? t('overview.critical') : t('overview.warning')}:</strong> {a.message}
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
      <h2>{t('overview.last24')}</h2>
      {history.data && <Chart samples={history.data.total} />}
      <table class="grid">
        <thead><tr><th scope="col">{t('col.pool')}</th>{(['ready', 'in_use', 'assigned', 'provisioning', 'refreshing', 'error', 'connected', 'disconnected'] as const).map((k) => <th key={k} scope="col">{t(`state.${k}`)}</th>)}<th scope="col">{t('overview.status')}</th></tr></thead>
        <tbody>
          {data?.pools.map((p) => {
            const ss = data.sessions.filter((s) => s.pool === p.name);
            return (
              <tr key={p.name}>
                <td>{p.displayName} <span class="muted">({p.name})</span></td>
                <td>{p.counts.ready}</td><td>{p.counts.in_use}</td><td>{p.counts.assigned}</td><td>{p.counts.provisioning}</td><td>{p.counts.refreshing}</td>
                <td class={p.counts.error ? 'bad' : ''}>{p.counts.error}</td>
                <td>{ss.filter((s) => s.state === 'connected').length}</td><td>{ss.filter((s) => s.state === 'disconnected').length}</td>
                <td>{p.maintenance ? t('overview.maintenance') : p.enabled ? t('overview.enabled') : t('overview.disabled')}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
