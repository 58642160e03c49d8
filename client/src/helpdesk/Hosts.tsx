// Hosts: capacity and load; maintenance on/off; drain and its progress.
import { api, enc } from '../api.ts';
import type { Host } from '../types.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';

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
      <h1>{t('hosts.hosts')}</h1>
      <ErrorLine error={error} />
      {banner}
      <table class="grid">
        <thead><tr><th>{t('hosts.host')}</th><th>{t('hosts.desktops')}</th><th>{t('hosts.vcpu')}</th><th>{t('hosts.memory')}</th><th>{t('hosts.status')}</th><th>{t('hosts.actions')}</th></tr></thead>
        <tbody>
          {data?.hosts.map((h) => (
            <tr key={`${h.provider}/${h.name}`} data-host={h.name}>
              <td>{h.name} <span class="muted">({h.provider})</span></td>
              <td>{h.used.desktops}</td>
              <td><meter min={0} max={100} high={85} value={pct(h.used.vcpu, h.capacity.vcpu)} /> {h.used.vcpu}/{h.capacity.vcpu}</td>
              <td><meter min={0} max={100} high={85} value={pct(h.used.memoryMiB, h.capacity.memoryMiB)} /> {Math.round(h.used.memoryMiB / 1024)}/{Math.round(h.capacity.memoryMiB / 1024)} GiB</td>
              <td>{h.reachable === false && <div class="bad" data-testid="unreachable" title={t('hosts.itsHypervisorDoesNotAnswer')}>{t('hosts.unreachable')}</div>}{h.maintenance ? 'maintenance' : 'active'}<DrainStatus drain={h.drain} /></td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: t('hostsM.vMaintenanceOnName', { v: h.maintenance ? 'End' : 'Start', name: h.name }), action: h.maintenance ? 'End maintenance' : 'Start maintenance',
                  body: <p>{h.maintenance ? 'The host takes new desktops again.' : 'The host takes no new desktops; running ones stay until moved.'}</p>,
                  run: async () => { await api.post(`/hosts/${enc(h.provider)}/${enc(h.name)}/maintenance`, { on: !h.maintenance }); reload(); return t('hostsM.maintenanceVForName', { v: h.maintenance ? 'off' : 'on', name: h.name }); },
                })}>{h.maintenance ? 'Maintenance off' : 'Maintenance on'}</button>
                <button type="button" class="danger" onClick={() => ask({
                  title: `Drain ${h.name}`, action: t('hosts.drain'), danger: true,
                  body: <p>{t('hosts.puts')}{' '}{h.name}{' '}{t('hosts.inMaintenanceAndLiveMigrates')}</p>,
                  run: async () => { await api.post(`/hosts/${enc(h.provider)}/${enc(h.name)}/drain`); reload(); return t('hostsM.drainingName', { name: h.name }); },
                })}>{t('hosts.drain')}</button>
                {h.drain?.state === 'running' && <button type="button" onClick={() => ask({
                  title: t('hostsM.cancelTheDrainOfName', { name: h.name }), action: t('hosts.cancelDrain'),
                  body: <p>{t('hosts.stopsMovingDesktopsAwayA')}{' '}{h.name}{' '}{t('hosts.staysInMaintenance')}</p>,
                  run: async () => { await api.del(`/hosts/${enc(h.provider)}/${enc(h.name)}/drain`); reload(); return t('hostsM.drainOfNameCancelled', { name: h.name }); },
                })}>{t('hosts.cancelDrain')}</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {dialog}
    </section>
  );
}
