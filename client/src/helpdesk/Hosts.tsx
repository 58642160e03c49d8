// Hosts: capacity and load; maintenance on/off; drain and its progress.
import { api, enc } from '../api.ts';
import type { Host } from '../types.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';
import { formatNumber } from '../i18n/format.ts';

const pct = (a: number, b: number) => (b ? Math.round((100 * a) / b) : 0);

/** The host's latest drain, as GET /hosts reports it. */
interface DrainSummary {
  id: string; state: 'running' | 'done' | 'failed' | 'cancelled'; requestedBy: string; reason: string;
  progress: { total: number; moved: number; failed: number; pending: number };
}
type HostRow = Host & { drain: DrainSummary | null };

const DRAIN_ENDED = { done: 'hosts.drainDone', failed: 'hosts.drainFailed', cancelled: 'hosts.drainCancelled' } as const;

function DrainStatus(props: { drain: DrainSummary | null }) {
  const d = props.drain;
  if (!d) return null;
  const p = d.progress;
  const text = d.state === 'running'
    ? t('hosts.draining', { moved: p.moved, total: p.total }) + (p.failed ? t('hosts.drainFailedCount', { failed: p.failed }) : '')
    : t(DRAIN_ENDED[d.state], { moved: p.moved, total: p.total });
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
              <td><meter min={0} max={100} high={85} value={pct(h.used.memoryMiB, h.capacity.memoryMiB)} /> {t('hosts.memoryGiB', { used: formatNumber(Math.round(h.used.memoryMiB / 1024)), capacity: formatNumber(Math.round(h.capacity.memoryMiB / 1024)) })}</td>
              <td>{h.reachable === false && <div class="bad" data-testid="unreachable" title={t('hosts.itsHypervisorDoesNotAnswer')}>{t('hosts.unreachable')}</div>}{h.maintenance ? t('hosts.inMaintenance') : t('hosts.active')}<DrainStatus drain={h.drain} /></td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: t(h.maintenance ? 'hosts.endMaintenanceOn' : 'hosts.startMaintenanceOn', { name: h.name }), action: h.maintenance ? t('hosts.endMaintenance') : t('hosts.startMaintenance'),
                  body: <p>{h.maintenance ? t('hosts.endMaintenanceBody') : t('hosts.startMaintenanceBody')}</p>,
                  run: async () => { await api.post(`/hosts/${enc(h.provider)}/${enc(h.name)}/maintenance`, { on: !h.maintenance }); reload(); return t(h.maintenance ? 'hosts.maintenanceOffFor' : 'hosts.maintenanceOnFor', { name: h.name }); },
                })}>{h.maintenance ? t('hosts.maintenanceOff') : t('hosts.maintenanceOn')}</button>
                <button type="button" class="danger" onClick={() => ask({
                  title: t('hosts.drainName', { name: h.name }), action: t('hosts.drain'), danger: true,
                  body: <p>{t('hosts.drainBody', { name: h.name })}</p>,
                  run: async () => { await api.post(`/hosts/${enc(h.provider)}/${enc(h.name)}/drain`); reload(); return t('hostsM.drainingName', { name: h.name }); },
                })}>{t('hosts.drain')}</button>
                {h.drain?.state === 'running' && <button type="button" onClick={() => ask({
                  title: t('hostsM.cancelTheDrainOfName', { name: h.name }), action: t('hosts.cancelDrain'),
                  body: <p>{t('hosts.cancelDrainBody', { name: h.name })}</p>,
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
