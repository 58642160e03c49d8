// Desktops: the server-paged table (search, sort, pool/state/host/user filters in the URL),
// bulk refresh / reset / delete with one confirmation, and per-desktop actions; each asks for
// confirmation and reports its outcome. Migrate is offered only when another eligible host exists.
import { useRef, useState, useEffect } from 'preact/hooks';
import { api, bulkDesktops, describeError, enc, fieldError, type ListAnswer } from '../api.ts';
import { DESKTOP_STATES, type Desktop, type Host, type Pool } from '../types.ts';
import { StateBadge, useActions, usePoll, type ConfirmRequest } from '../ui.tsx';
import { Table, useUrlQuery, type BulkAction, type Column } from './Table.tsx';
import { t } from '../i18n/index.ts';
import { formatTime } from '../i18n/format.ts';

const RUNNING = new Set(['ready', 'assigned', 'in_use']);

/** Hosts a desktop can be live-migrated to: same provider, another reachable host not in maintenance. */
export function migrationTargets(d: Desktop, hosts: Host[]): string[] {
  if (!d.host || !RUNNING.has(d.state)) return [];
  return hosts.filter((h) => h.provider === d.provider && h.name !== d.host && !h.maintenance && h.reachable !== false).map((h) => h.name);
}

function MigrateDialog(props: { desktop: Desktop | null; targets: string[]; onClose: () => void; onDone: (ok: boolean, text: string) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [host, setHost] = useState('');
  const [err, setErr] = useState<{ field?: string; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const d = props.desktop;
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (d) {
      setHost(props.targets[0] ?? '');
      setErr(null);
      if (!el.open) el.showModal();
    } else if (el.open) el.close();
  }, [d]);
  return (
    <dialog ref={ref} class="confirm" onClose={props.onClose}>
      {d && (
        <form method="dialog" onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            const r = await api.post<{ migration: { fromHost: string; toHost: string; durationMs: number } }>(`/desktops/${enc(d.id)}/migrate`, { host });
            props.onDone(true, t('hdDesktopsM.nameMovedFromhostTohostIn', { name: d.name, fromHost: r.migration.fromHost, toHost: r.migration.toHost, durationMs: r.migration.durationMs }));
            props.onClose();
          } catch (x) {
            const f = fieldError(x);
            // A refused field stays in the dialog, next to the field; anything else too, in words.
            setErr(f ? { field: f.field, text: f.message } : { text: t('hdDesktopsM.migrateFailedX', { x: describeError(x) }) });
          } finally {
            setBusy(false);
          }
        }}>
          <h2>{t('hdDesktops.migrateName', { name: d.name })}</h2>
          <p>{t('hdDesktops.migrateBody', { host: d.host })}</p>
          <label>{t('hdDesktops.targetHost')}<select name="host" value={host} aria-invalid={err?.field === 'host'} aria-describedby="migrate-host-error" onChange={(e) => setHost((e.target as HTMLSelectElement).value)}>
              {props.targets.map((h) => <option key={h} value={h}>{h}</option>)}
            </select>
            {err?.field === 'host' && <span class="field-error" id="migrate-host-error" role="alert">{err.text}</span>}
          </label>
          {err && err.field !== 'host' && <p class="banner bad" role="alert">{err.text}</p>}
          <div class="buttons">
            <button type="button" onClick={props.onClose} disabled={busy}>{t('hdDesktops.cancel')}</button>
            <button type="submit" class="primary" disabled={busy}>{busy ? t('common.working') : t('hdDesktops.migrate')}</button>
          </div>
        </form>
      )}
    </dialog>
  );
}

export function Desktops() {
  const url = useUrlQuery();
  const pools = usePoll(() => api.get<{ pools: Pool[] }>('/pools'), 30_000, [], false).data?.pools ?? [];
  const hosts = usePoll(() => api.get<{ hosts: Host[] }>('/hosts'), 30_000, [], false).data?.hosts ?? [];
  const { ask, dialog, banner } = useActions();
  const [bump, setBump] = useState(0);
  const [migrating, setMigrating] = useState<Desktop | null>(null);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null);
  const reload = () => setBump((n) => n + 1);
  const act = (r: Omit<ConfirmRequest, 'run'> & { run: (v: string) => Promise<string> }) => ask({ ...r, run: async (v) => { const t = await r.run(v); reload(); return t; } });

  const columns: Column<Desktop>[] = [
    { key: 'name', label: t('hdDesktops.name'), sortable: true, render: (d) => <>{d.name}{d.lastError && <div class="muted small" title={d.lastError}>⚠ {d.lastError.slice(0, 60)}</div>}</> },
    { key: 'pool', label: t('hdDesktops.pool'), sortable: true, render: (d) => d.pool },
    { key: 'state', label: t('hdDesktops.state'), sortable: true, render: (d) => <><StateBadge state={d.state} />{!!d.unreachableSince && <div class="bad small" data-testid="unreachable" title={t('hdDesktops.itsHostDoesNotAnswer')}>{t('hdDesktops.unreachableSince', { time: formatTime(d.unreachableSince) })}</div>}</> },
    { key: 'host', label: t('hdDesktops.host'), sortable: true, render: (d) => `${d.provider}/${d.host}` },
    { key: 'user', label: t('hdDesktops.user'), sortable: true, render: (d) => d.user },
    { key: 'image', label: t('hdDesktops.image'), sortable: true, render: (d) => d.image },
  ];
  const names = (rows: Desktop[]) => <p class="small">{rows.slice(0, 20).map((d) => d.name).join(', ')}{rows.length > 20 ? ` ${t('hdDesktops.andMore', { count: rows.length - 20 })}` : ''}</p>;
  const bulk: BulkAction<Desktop>[] = [
    { label: t('hdDesktops.refresh'), danger: true, done: t('hdDesktops.beingRefreshed'), describe: (rows) => <><p>{t('hdDesktops.endsTheSessionsOnThese')}</p>{names(rows)}</>, run: (rows) => bulkDesktops('refresh', rows.map((d) => d.id)) },
    { label: t('hdDesktops.reset'), danger: true, done: t('hdDesktops.reset2'), describe: (rows) => <><p>{t('hdDesktops.powerCyclesTheseDesktopsSessions')}</p>{names(rows)}</>, run: (rows) => bulkDesktops('reset', rows.map((d) => d.id)) },
    { label: t('hdDesktops.delete'), danger: true, done: t('hdDesktops.beingDeleted'), describe: (rows) => <><p>{t('hdDesktops.endsTheirSessionsAndDestroys')}</p>{names(rows)}</>, run: (rows) => bulkDesktops('delete', rows.map((d) => d.id)) },
  ];
  const sel = (k: string) => (e: Event) => url.set({ [k]: (e.target as HTMLInputElement).value });

  return (
    <section>
      <h1>{t('hdDesktops.desktops')}</h1>
      {banner}
      {outcome && <p class={outcome.ok ? 'banner ok' : 'banner bad'} role="status">{outcome.text}</p>}
      <Table<Desktop>
        url={url}
        testId="desktops-table"
        columns={columns}
        rowKey={(d) => d.id}
        rowAttrs={(d) => ({ 'data-desktop': d.name })}
        load={(qs) => api.get<ListAnswer<Desktop>>(`/desktops?${qs}`)}
        filterKeys={['pool', 'state', 'host', 'user']}
        defaultSort="name"
        searchLabel={t('hdDesktops.searchDesktops')}
        empty={t('hdDesktops.noDesktopsMatch')}
        reloadKey={bump}
        bulk={bulk}
        filters={
          <>
            <label>{t('hdDesktops.pool')}{' '}<select name="pool" value={url.get('pool')} onChange={sel('pool')}><option value="">{t('hdDesktops.any')}</option>{pools.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}</select></label>
            <label>{t('hdDesktops.state')}{' '}<select name="state" value={url.get('state')} onChange={sel('state')}><option value="">{t('hdDesktops.any')}</option>{DESKTOP_STATES.map((s) => <option key={s}>{s}</option>)}</select></label>
          </>
        }
        actions={(d) => {
          const targets = migrationTargets(d, hosts);
          return (
            <>
              <button type="button" onClick={() => act({ title: t('hdDesktops.refreshName', { name: d.name }), action: t('hdDesktops.refresh'), danger: true, body: <p>{t('hdDesktops.endsTheSessionOnIt')}</p>, run: async () => { await api.post(`/desktops/${enc(d.id)}/refresh`); return t('hdDesktopsM.nameIsBeingRefreshed', { name: d.name }); } })}>{t('hdDesktops.refresh')}</button>
              <button type="button" onClick={() => act({ title: t('hdDesktops.resetName', { name: d.name }), action: t('hdDesktops.reset'), danger: true, body: <p>{t('hdDesktops.powerCyclesTheDesktopThe')}</p>, run: async () => { await api.post(`/desktops/${enc(d.id)}/reset`); return t('hdDesktopsM.nameWasReset', { name: d.name }); } })}>{t('hdDesktops.reset')}</button>
              <button type="button" onClick={() => act({ title: t('hdDesktops.deleteName', { name: d.name }), action: t('hdDesktops.delete'), danger: true, body: <p>{t('hdDesktops.endsItsSessionAndDestroys')}</p>, run: async () => { await api.del(`/desktops/${enc(d.id)}`); return t('hdDesktopsM.nameIsBeingDeleted', { name: d.name }); } })}>{t('hdDesktops.delete')}</button>
              {d.user ? (
                <button type="button" onClick={() => act({ title: t('hdDesktops.unassignName', { name: d.name }), action: t('hdDesktops.unassign'), body: <p>{t('hdDesktops.unassignBody', { user: d.user })}</p>, run: async () => { await api.post(`/desktops/${enc(d.id)}/unassign`); return t('hdDesktopsM.nameUnassignedFromUser', { name: d.name, user: d.user }); } })}>{t('hdDesktops.unassign')}</button>
              ) : (
                <button type="button" onClick={() => act({ title: t('hdDesktops.assignName', { name: d.name }), action: t('hdDesktops.assign'), body: <p>{t('hdDesktops.givesThisReadyDesktopOf')}</p>, input: { label: t('hdDesktops.user') }, run: async (u) => { await api.post(`/desktops/${enc(d.id)}/assign`, { user: u }); return t('hdDesktopsM.nameAssignedToU', { name: d.name, u: u }); } })}>{t('hdDesktops.assign')}</button>
              )}
              <button type="button" onClick={() => act({ title: t('hdDesktops.snapshotName2', { name: d.name }), action: t('hdDesktops.takeSnapshot'), body: <p>{t('hdDesktops.savesDiskAndMemorySnapshots')}</p>, input: { label: t('hdDesktops.snapshotName'), value: `snap-${new Date().toISOString().slice(0, 16).replace(/[-:T]/g, '')}` }, run: async (n) => { await api.post(`/desktops/${enc(d.id)}/snapshots`, { name: n }); return t('hdDesktopsM.snapshotNOfNameTaken', { n: n, name: d.name }); } })}>{t('hdDesktops.snapshot')}</button>
              <button type="button" onClick={async () => {
                const { snapshots } = await api.get<{ snapshots: { name: string }[] }>(`/desktops/${enc(d.id)}/snapshots`).catch(() => ({ snapshots: [] }));
                act({ title: t('hdDesktops.revertName', { name: d.name }), action: t('hdDesktops.revert'), danger: true, body: <p>{snapshots.length ? t('hdDesktops.revertBody') : t('hdDesktops.noSnapshots')}</p>, input: { label: t('hdDesktops.snapshot'), options: snapshots.map((s) => s.name) }, run: async (n) => { await api.post(`/desktops/${enc(d.id)}/snapshots/${enc(n)}/revert`); return t('hdDesktopsM.nameRevertedToN', { name: d.name, n: n }); } });
              }}>{t('hdDesktops.revert')}</button>
              {targets.length > 0 && <button type="button" onClick={() => setMigrating(d)}>{t('hdDesktops.migrate')}</button>}
            </>
          );
        }}
      />
      <MigrateDialog
        desktop={migrating}
        targets={migrating ? migrationTargets(migrating, hosts) : []}
        onClose={() => setMigrating(null)}
        onDone={(ok, text) => { setOutcome({ ok, text }); reload(); }}
      />
      {dialog}
    </section>
  );
}
