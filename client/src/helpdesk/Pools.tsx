// Pools: create, edit, clone, delete (confirmed), resize, maintenance on/off, image rollout
// progress. The form keeps what is typed: live updates refresh an untouched form, but never
// overwrite one being edited (it says "changed on the server" instead); a refused field's
// message appears next to that field.
import { useEffect, useState } from 'preact/hooks';
import { api, describeError, enc, fieldError } from '../api.ts';
import type { Host, Pool } from '../types.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';

/** The form's fields, as typed (strings, like the inputs). */
type Values = Record<
  'name' | 'displayName' | 'description' | 'persistence' | 'assignment' | 'image' | 'provider' | 'naming' | 'clone'
  | 'min' | 'max' | 'spare' | 'vcpu' | 'memoryMiB' | 'diskGiB' | 'users' | 'groups', string
>;

/** Pool names: lower-case letters, digits and -, starting with a letter (valid with the v flag Chromium uses for `pattern`). */
export const POOL_NAME_PATTERN = '[a-z][a-z0-9\\-]*[a-z0-9]';

function valuesOf(p: Pool | undefined, provider: string): Values {
  return {
    name: p?.name ?? '', displayName: p?.displayName ?? '', description: p?.description ?? '',
    persistence: p?.persistence ?? 'refresh', assignment: p?.assignment ?? 'floating', image: p?.image ?? 'demo',
    provider: p?.provider ?? provider, naming: p?.naming ?? 'desk-{n:03}', clone: p?.clone ?? 'linked',
    min: String(p?.size.min ?? 0), max: String(p?.size.max ?? 10), spare: String(p?.size.spare ?? 1),
    vcpu: String(p?.resources.vcpu ?? 1), memoryMiB: String(p?.resources.memoryMiB ?? 512), diskGiB: String(p?.resources.diskGiB ?? 8),
    users: p?.entitlements.users.join(', ') ?? '', groups: p?.entitlements.groups.join(', ') ?? '',
  };
}

const list = (s: string) => s.split(/[\s,]+/).filter(Boolean);
/** Settings of a pool the form does not show, carried over by Clone. */
const HIDDEN_SETTINGS = ['sessionPolicy', 'share', 'fileTransfer', 'shadow', 'recording', 'enabled'] as const;

/** "entitlements.users.0" -> users, "size.min" -> min, "naming" -> naming. */
function formKey(field: string): string {
  const parts = field.split('.').filter((p) => !/^\d+$/.test(p));
  return parts.at(-1) ?? field;
}

export function PoolForm(props: {
  mode: 'new' | 'edit' | 'clone';
  /** edit: the pool as the server has it now (live); clone: the source. */
  pool?: Pool;
  providers: string[];
  onSaved: (text: string) => void;
  onCancel: () => void;
}) {
  const { mode, pool } = props;
  const initial = () => {
    const v = valuesOf(pool, props.providers[0] ?? '');
    if (mode === 'clone') return { ...v, name: '', displayName: t('pools.copyName', { name: v.displayName }), naming: '' };
    return v;
  };
  const [values, setValues] = useState<Values>(initial);
  /** What the server had when the form last took its values (edit). */
  const [base, setBase] = useState<Values>(initial);
  const [dirty, setDirty] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState('');
  const [busy, setBusy] = useState(false);

  // Live data: an untouched edit form follows the server; a touched one keeps what was typed.
  const server = mode === 'edit' && pool ? valuesOf(pool, '') : null;
  const serverKey = server ? JSON.stringify(server) : '';
  useEffect(() => {
    if (!server || dirty) return;
    setValues(server);
    setBase(server);
  }, [serverKey]);
  const changedOnServer = !!server && dirty && serverKey !== JSON.stringify(base);
  // New pool: the provider defaults to the first configured one once the list arrives.
  useEffect(() => {
    if (mode !== 'edit' && !values.provider && props.providers[0]) setValues((v) => ({ ...v, provider: props.providers[0]! }));
  }, [props.providers.join(',')]);

  const set = (k: keyof Values) => (e: Event) => {
    const v = (e.target as HTMLInputElement).value;
    setValues((cur) => ({ ...cur, [k]: v }));
    setDirty(true);
    if (errors[k]) setErrors(({ [k]: _, ...rest }) => rest);
  };
  const err = (k: string) => errors[k] ? <span class="field-error" role="alert" data-error-for={k}>{errors[k]}</span> : null;
  const field = (k: keyof Values, label: string, input: preact.JSX.Element) => <label data-field={k}>{label} {input}{err(k)}</label>;
  const text = (k: keyof Values, extra: Record<string, unknown> = {}) => <input name={k} value={values[k]} onInput={set(k)} aria-invalid={!!errors[k]} {...extra} />;
  const number = (k: keyof Values, min: number) => text(k, { type: 'number', min });
  const select = (k: keyof Values, options: string[]) => <select name={k} value={values[k]} onChange={set(k)} aria-invalid={!!errors[k]}>{options.map((o) => <option key={o} value={o}>{t(`pools.opt.${o}`, { defaultValue: o })}</option>)}</select>;

  const save = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setFailure('');
    setErrors({});
    const v = values;
    const common = {
      displayName: v.displayName, description: v.description, persistence: v.persistence,
      entitlements: { users: list(v.users), groups: list(v.groups) },
    };
    try {
      if (mode === 'edit' && pool) {
        await api.patch(`/pools/${enc(pool.name)}`, common);
        props.onSaved(t('pools.saved', { name: pool.name }));
      } else {
        const hidden: Record<string, unknown> = {};
        if (mode === 'clone' && pool) for (const k of HIDDEN_SETTINGS) if ((pool as unknown as Record<string, unknown>)[k] !== undefined) hidden[k] = (pool as unknown as Record<string, unknown>)[k];
        await api.post('/pools', {
          ...hidden, ...common, name: v.name, assignment: v.assignment, image: v.image, provider: v.provider, naming: v.naming, clone: v.clone,
          size: { min: Number(v.min), max: Number(v.max), spare: Number(v.spare) },
          resources: { ...(mode === 'clone' && pool ? pool.resources : { network: 'default', graphics: 'vga' }), vcpu: Number(v.vcpu), memoryMiB: Number(v.memoryMiB), diskGiB: Number(v.diskGiB) },
        });
        props.onSaved(mode === 'clone' && pool ? t('pools.createdAsCopy', { name: v.name, source: pool.name }) : t('pools.created', { name: v.name }));
      }
    } catch (x) {
      const f = fieldError(x);
      const k = f ? formKey(f.field) : '';
      if (f && k in values) setErrors({ [k]: f.message });
      else setFailure(t('pools.savingFailed', { error: f ? `${f.field}: ${f.message}` : describeError(x) }));
    } finally {
      setBusy(false);
    }
  };

  const title = mode === 'edit' ? t('pools.editName', { name: pool?.name }) : mode === 'clone' ? t('pools.cloneName', { name: pool?.name }) : t('pools.newPool');
  return (
    <form class="card pool-form" onSubmit={save} data-testid="pool-form" noValidate={false}>
      <h2>{title}</h2>
      {changedOnServer && (
        <p class="banner warn" role="status" data-testid="changed-on-server">
          {t('pools.thisPoolWasChangedOn')}{' '}
          <button type="button" onClick={() => { setValues(server!); setBase(server!); setDirty(false); }}>{t('pools.loadTheServerSValues')}</button>
        </p>
      )}
      {failure && <p class="banner bad" role="alert">{failure}</p>}
      {mode !== 'edit' && field('name', t('pools.fName'), text('name', { required: true, pattern: POOL_NAME_PATTERN, title: t('pools.lowerCaseLettersDigitsAnd') }))}
      {field('displayName', t('pools.fDisplayName'), text('displayName', { required: true }))}
      {field('description', t('pools.fDescription'), text('description'))}
      {field('persistence', t('pools.fPersistence'), select('persistence', ['refresh', 'delete', 'persistent']))}
      {mode !== 'edit' && (
        <>
          {field('assignment', t('pools.fAssignment'), select('assignment', ['floating', 'dedicated']))}
          {field('image', t('pools.fImage'), text('image', { required: true }))}
          {field('provider', t('pools.fProvider'), props.providers.length ? select('provider', props.providers.includes(values.provider) || !values.provider ? props.providers : [values.provider, ...props.providers]) : text('provider', { required: true }))}
          {field('naming', t('pools.fNaming'), text('naming', { required: true, placeholder: 'lab-{n:03}' }))}
          {field('clone', t('pools.fClone'), select('clone', ['linked', 'full']))}
          {field('min', t('pools.fMin'), number('min', 0))}
          {field('max', t('pools.fMax'), number('max', 0))}
          {field('spare', t('pools.fSpare'), number('spare', 0))}
          {field('vcpu', 'vCPU', number('vcpu', 1))}
          {field('memoryMiB', t('pools.fMemoryMiB'), number('memoryMiB', 64))}
          {field('diskGiB', t('pools.fDiskGiB'), number('diskGiB', 1))}
        </>
      )}
      {field('users', t('pools.fUsers'), text('users'))}
      {field('groups', t('pools.fGroups'), text('groups'))}
      <div class="buttons"><button type="button" onClick={props.onCancel}>{t('pools.cancel')}</button><button class="primary" disabled={busy}>{busy ? t('pools.saving') : t('pools.save')}</button></div>
    </form>
  );
}

/** Desktops of a pool: its live desktops (total), not the sum of every counter. */
export function poolDesktops(p: Pool): number {
  const c = p.counts as Pool['counts'] & { total?: number };
  if (typeof c.total === 'number') return c.total;
  return Object.entries(c).filter(([k]) => k !== 'deleted' && k !== 'sessions' && k !== 'total').reduce((a, [, n]) => a + n, 0);
}

export function Pools() {
  const { data, error, reload } = usePoll(() => api.get<{ pools: Pool[] }>('/pools'), 10_000, [], true);
  const providers = [...new Set((usePoll(() => api.get<{ hosts: Host[] }>('/hosts'), 60_000, [], false).data?.hosts ?? []).map((h) => h.provider))];
  const { ask, dialog, banner } = useActions();
  const [editing, setEditing] = useState<{ mode: 'new' | 'edit' | 'clone'; name?: string; source?: Pool } | null>(null);
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  const live = editing?.mode === 'edit' ? data?.pools.find((p) => p.name === editing.name) : editing?.source;
  return (
    <section>
      <h1>{t('pools.pools')}{' '}<button type="button" onClick={() => setEditing({ mode: 'new' })}>{t('pools.newPool')}</button></h1>
      <ErrorLine error={error} />
      {banner}
      {note && <p class={note.ok ? 'banner ok' : 'banner bad'} role="status">{note.text}</p>}
      {editing && (editing.mode === 'new' || live) && (
        <PoolForm
          key={`${editing.mode}:${editing.name ?? editing.source?.name ?? ''}`}
          mode={editing.mode}
          pool={live}
          providers={providers}
          onSaved={(t) => { setNote({ ok: true, text: t }); setEditing(null); reload(); }}
          onCancel={() => setEditing(null)}
        />
      )}
      <table class="grid">
        <thead><tr><th>{t('pools.pool')}</th><th>{t('pools.type')}</th><th>{t('pools.sizeMinMaxSpare')}</th><th>{t('pools.desktops')}</th><th>{t('pools.imageRollout')}</th><th>{t('pools.status')}</th><th>{t('pools.actions')}</th></tr></thead>
        <tbody>
          {data?.pools.map((p) => {
            const pct = p.rollout.total ? Math.round((100 * p.rollout.upToDate) / p.rollout.total) : 100;
            return (
              <tr key={p.name} data-pool={p.name}>
                <td>{p.displayName}<br /><span class="muted">{p.name}</span></td>
                <td>{t(`pools.opt.${p.assignment}`, { defaultValue: p.assignment })}, {t(`pools.opt.${p.persistence}`, { defaultValue: p.persistence })}</td>
                <td>{p.size.min} / {p.size.max} / {p.size.spare}</td>
                <td data-testid="pool-desktops">{poolDesktops(p)}</td>
                <td><progress max={100} value={pct} /> {t('images.rollout', { upToDate: p.rollout.upToDate, total: p.rollout.total, target: p.rollout.target || p.image })}</td>
                <td>{p.deleting ? t('pools.stDeleting') : p.maintenance ? t('pools.stMaintenance') : p.enabled ? t('pools.stEnabled') : t('pools.stDisabled')}</td>
                <td class="actions">
                  <button type="button" onClick={() => setEditing({ mode: 'edit', name: p.name })}>{t('pools.edit')}</button>
                  <button type="button" onClick={() => setEditing({ mode: 'clone', source: p })}>{t('pools.clone')}</button>
                  <button type="button" onClick={() => ask({
                    title: t('pools.resizeName', { name: p.name }), action: t('pools.resize'), body: <p>{t('pools.resizeBody', { now: `${p.size.min},${p.size.max},${p.size.spare}` })}</p>,
                    input: { label: t('pools.minMaxSpare'), value: `${p.size.min},${p.size.max},${p.size.spare}` },
                    run: async (v) => {
                      const [min, max, spare] = v.split(',').map((x) => Number(x.trim()));
                      await api.post(`/pools/${enc(p.name)}/resize`, { min, max, spare });
                      reload();
                      return t('poolsM.poolNameResizedToMin', { name: p.name, min: min, max: max, spare: spare });
                    },
                  })}>{t('pools.resize')}</button>
                  <button type="button" onClick={() => ask({
                    title: t(p.maintenance ? 'pools.endMaintenanceOf' : 'pools.startMaintenanceOf', { name: p.name }), action: p.maintenance ? t('hosts.endMaintenance') : t('hosts.startMaintenance'),
                    body: <p>{p.maintenance ? t('pools.endMaintenanceBody') : t('pools.startMaintenanceBody')}</p>,
                    run: async () => {
                      await api.patch(`/pools/${enc(p.name)}`, { maintenance: !p.maintenance });
                      reload();
                      return t(p.maintenance ? 'hosts.maintenanceOffFor' : 'hosts.maintenanceOnFor', { name: p.name });
                    },
                  })}>{p.maintenance ? t('hosts.maintenanceOff') : t('hosts.maintenanceOn')}</button>
                  <button type="button" class="danger" disabled={p.deleting} onClick={() => ask({
                    title: t('poolsM.deletePoolName', { name: p.name }), action: t('pools.deletePool'), danger: true,
                    body: <p>{t('pools.deleteBody', { name: p.name, count: poolDesktops(p) })}</p>,
                    input: { label: t('pools.poolName'), value: '' },
                    run: async (v) => {
                      if (v.trim() !== p.name) throw new Error(t('pools.typeNameToDelete', { name: p.name }));
                      await api.del(`/pools/${enc(p.name)}`);
                      reload();
                      return t('poolsM.poolNameIsBeingDeleted', { name: p.name });
                    },
                  })}>{t('pools.delete')}</button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {dialog}
    </section>
  );
}
