// Hosts: capacity and load; maintenance on/off and drain.
import { api, enc } from '../api.ts';
import type { Host } from '../types.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';

const pct = (a: number, b: number) => (b ? Math.round((100 * a) / b) : 0);

export function Hosts() {
  const { data, error, reload } = usePoll(() => api.get<{ hosts: Host[] }>('/hosts'), 10_000, [], true);
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
              <td>{h.maintenance ? 'maintenance' : 'active'}</td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: `${h.maintenance ? 'End' : 'Start'} maintenance on ${h.name}`, action: h.maintenance ? 'End maintenance' : 'Start maintenance',
                  body: <p>{h.maintenance ? 'The host takes new desktops again.' : 'The host takes no new desktops; running ones stay until moved.'}</p>,
                  run: async () => { await api.post(`/hosts/${enc(h.provider)}/${enc(h.name)}/maintenance`, { on: !h.maintenance }); reload(); return `Maintenance ${h.maintenance ? 'off' : 'on'} for ${h.name}.`; },
                })}>{h.maintenance ? 'Maintenance off' : 'Maintenance on'}</button>
                <button type="button" class="danger" onClick={() => ask({
                  title: `Drain ${h.name}`, action: 'Drain', danger: true,
                  body: <p>Puts {h.name} in maintenance and live-migrates every desktop away, in the background.</p>,
                  run: async () => { await api.post(`/hosts/${enc(h.provider)}/${enc(h.name)}/drain`); reload(); return `Draining ${h.name}.`; },
                })}>Drain</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {dialog}
    </section>
  );
}
