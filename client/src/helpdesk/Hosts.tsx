// Hosts: capacity and load; maintenance on/off; drain and its progress.
import { api, enc } from '../api.ts';
import type { Host } from '../types.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';

const pct = (a: number, b: number) => (b ? Math.round((100 * a) / b) : 0);

/** The host's latest drain, as GET /hosts reports it. */
interface DrainSummary {
  id: string; state: 'running' | 'done' | 'failed' | 'cancelled'; requestedBy: string; reason: string;
  progress: { total: number; moved: number; failed: number; pending: number };
}
type HostRow = Host & { drain: DrainSummary | null };

function DrainStatus(props: { drain: DrainSummary | null }) {
  const d = props.drain;
  if (!d) return null;
  const p = d.progress;
  const text = d.state === 'running' ? `draining: ${p.moved}/${p.total} moved${p.failed ? `, ${p.failed} failed` : ''}` : `drain ${d.state}: ${p.moved}/${p.total} moved`;
  return (
    <div class="muted" data-testid="drain" data-state={d.state}>
      {d.state === 'running' && <progress max={Math.max(1, p.total)} value={p.moved} />} {text}
      {d.reason && <div class={d.state === 'failed' ? 'bad' : undefined}>{d.reason}</div>}
    </div>
  );
}

export function Hosts() {
  const { data, error, reload } = usePoll(() => api.get<{ hosts: HostRow[] }>('/hosts'), 5_000, [], true);
  const { ask, dialog, banner } = useActions();
  return (
    <section>
      <h1>Hosts</h1>
      <ErrorLine error={error} />
      {banner}
      <table class="grid">
        <thead><tr><th>Host</th><th>Desktops</th><th>vCPU</th><th>Memory</th><th>Status</th><th>Actions</th></tr></thead>
        <tbody>
          {data?.hosts.map((h) => (
            <tr key={`${h.provider}/${h.name}`} data-host={h.name}>
              <td>{h.name} <span class="muted">({h.provider})</span></td>
              <td>{h.used.desktops}</td>
              <td><meter min={0} max={100} high={85} value={pct(h.used.vcpu, h.capacity.vcpu)} /> {h.used.vcpu}/{h.capacity.vcpu}</td>
              <td><meter min={0} max={100} high={85} value={pct(h.used.memoryMiB, h.capacity.memoryMiB)} /> {Math.round(h.used.memoryMiB / 1024)}/{Math.round(h.capacity.memoryMiB / 1024)} GiB</td>
              <td>{h.reachable === false && <div class="bad" data-testid="unreachable" title="Its hypervisor does not answer: its desktops are marked unreachable and not handed out; nothing new is placed here.">unreachable</div>}{h.maintenance ? 'maintenance' : 'active'}<DrainStatus drain={h.drain} /></td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: `${h.maintenance ? 'End' : 'Start'} maintenance on ${h.name}`, action: h.maintenance ? 'End maintenance' : 'Start maintenance',
                  body: <p>{h.maintenance ? 'The host takes new desktops again.' : 'The host takes no new desktops; running ones stay until moved.'}</p>,
                  run: async () => { await api.post(`/hosts/${enc(h.provider)}/${enc(h.name)}/maintenance`, { on: !h.maintenance }); reload(); return `Maintenance ${h.maintenance ? 'off' : 'on'} for ${h.name}.`; },
                })}>{h.maintenance ? 'Maintenance off' : 'Maintenance on'}</button>
                <button type="button" class="danger" onClick={() => ask({
                  title: `Drain ${h.name}`, action: 'Drain', danger: true,
                  body: <p>Puts {h.name} in maintenance and live-migrates every desktop away, one at a time, with retries; progress shows here.</p>,
                  run: async () => { await api.post(`/hosts/${enc(h.provider)}/${enc(h.name)}/drain`); reload(); return `Draining ${h.name}.`; },
                })}>Drain</button>
                {h.drain?.state === 'running' && <button type="button" onClick={() => ask({
                  title: `Cancel the drain of ${h.name}`, action: 'Cancel drain',
                  body: <p>Stops moving desktops away (a migration in progress finishes). {h.name} stays in maintenance.</p>,
                  run: async () => { await api.del(`/hosts/${enc(h.provider)}/${enc(h.name)}/drain`); reload(); return `Drain of ${h.name} cancelled.`; },
                })}>Cancel drain</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {dialog}
    </section>
  );
}
