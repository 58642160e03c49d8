// Pools: create, edit, resize, maintenance on/off, image rollout progress.
import { useState } from 'preact/hooks';
import { api, enc } from '../api.ts';
import type { Pool } from '../types.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';

const num = (f: FormData, k: string) => Number(f.get(k));

function PoolForm(props: { pool?: Pool; onSaved: (text: string) => void; onError: (text: string) => void; onCancel: () => void }) {
  const p = props.pool;
  return (
    <form
      class="card pool-form"
      onSubmit={async (e) => {
        e.preventDefault();
        const f = new FormData(e.currentTarget);
        const common = {
          displayName: String(f.get('displayName')), description: String(f.get('description') ?? ''),
          persistence: String(f.get('persistence')),
          entitlements: { users: String(f.get('users') ?? '').split(/[\s,]+/).filter(Boolean), groups: String(f.get('groups') ?? '').split(/[\s,]+/).filter(Boolean) },
        };
        try {
          if (p) {
            await api.patch(`/pools/${enc(p.name)}`, common);
            props.onSaved(`Pool ${p.name} saved.`);
          } else {
            await api.post('/pools', {
              ...common, name: String(f.get('name')), assignment: String(f.get('assignment')), image: String(f.get('image')), provider: String(f.get('provider')),
              naming: String(f.get('naming')), clone: String(f.get('clone')),
              size: { min: num(f, 'min'), max: num(f, 'max'), spare: num(f, 'spare') },
              resources: { vcpu: num(f, 'vcpu'), memoryMiB: num(f, 'memoryMiB'), diskGiB: num(f, 'diskGiB'), network: 'default', graphics: 'vga' },
            });
            props.onSaved(`Pool ${String(f.get('name'))} created.`);
          }
        } catch (err) {
          props.onError(`Saving failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }}
    >
      <h2>{p ? `Edit ${p.name}` : 'New pool'}</h2>
      {!p && <label>Name <input name="name" required pattern="[a-z][a-z0-9-]*[a-z0-9]" /></label>}
      <label>Display name <input name="displayName" required value={p?.displayName ?? ''} /></label>
      <label>Description <input name="description" value={p?.description ?? ''} /></label>
      <label>Persistence <select name="persistence" value={p?.persistence ?? 'refresh'}><option>refresh</option><option>delete</option><option>persistent</option></select></label>
      {!p && (
        <>
          <label>Assignment <select name="assignment"><option>floating</option><option>dedicated</option></select></label>
          <label>Image <input name="image" required value="demo" /></label>
          <label>Provider <input name="provider" required value="qemu" /></label>
          <label>Naming <input name="naming" required value="desk-{n:03}" /></label>
          <label>Clone <select name="clone"><option>linked</option><option>full</option></select></label>
          <label>min <input name="min" type="number" min={0} value={0} /></label>
          <label>max <input name="max" type="number" min={0} value={10} /></label>
          <label>spare <input name="spare" type="number" min={0} value={1} /></label>
          <label>vCPU <input name="vcpu" type="number" min={1} value={1} /></label>
          <label>Memory MiB <input name="memoryMiB" type="number" min={64} value={512} /></label>
          <label>Disk GiB <input name="diskGiB" type="number" min={1} value={8} /></label>
        </>
      )}
      <label>Entitled users <input name="users" value={p?.entitlements.users.join(', ') ?? ''} /></label>
      <label>Entitled groups <input name="groups" value={p?.entitlements.groups.join(', ') ?? ''} /></label>
      <div class="buttons"><button type="button" onClick={props.onCancel}>Cancel</button><button class="primary">Save</button></div>
    </form>
  );
}

export function Pools() {
  const { data, error, reload } = usePoll(() => api.get<{ pools: Pool[] }>('/pools'), 10_000, [], true);
  const { ask, dialog, banner } = useActions();
  const [editing, setEditing] = useState<Pool | 'new' | null>(null);
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  return (
    <section>
      <h1>Pools <button type="button" onClick={() => setEditing('new')}>New pool</button></h1>
      <ErrorLine error={error} />
      {banner}
      {note && <p class={note.ok ? 'banner ok' : 'banner bad'} role="status">{note.text}</p>}
      {editing && (
        <PoolForm
          pool={editing === 'new' ? undefined : editing}
          onSaved={(t) => { setNote({ ok: true, text: t }); setEditing(null); reload(); }}
          onError={(t) => setNote({ ok: false, text: t })}
          onCancel={() => setEditing(null)}
        />
      )}
      <table class="grid">
        <thead><tr><th>Pool</th><th>Type</th><th>Size (min/max/spare)</th><th>Desktops</th><th>Image rollout</th><th>Status</th><th>Actions</th></tr></thead>
        <tbody>
          {data?.pools.map((p) => {
            const total = Object.values(p.counts).reduce((a, b) => a + b, 0) - (p.counts.deleted ?? 0);
            const pct = p.rollout.total ? Math.round((100 * p.rollout.upToDate) / p.rollout.total) : 100;
            return (
              <tr key={p.name} data-pool={p.name}>
                <td>{p.displayName}<br /><span class="muted">{p.name}</span></td>
                <td>{p.assignment}, {p.persistence}</td>
                <td>{p.size.min} / {p.size.max} / {p.size.spare}</td>
                <td>{total}</td>
                <td><progress max={100} value={pct} /> {p.rollout.upToDate}/{p.rollout.total} on {p.rollout.target || p.image}</td>
                <td>{p.deleting ? 'deleting' : p.maintenance ? 'maintenance' : p.enabled ? 'enabled' : 'disabled'}</td>
                <td class="actions">
                  <button type="button" onClick={() => setEditing(p)}>Edit</button>
                  <button type="button" onClick={() => ask({
                    title: `Resize ${p.name}`, action: 'Resize', body: <p>Enter min,max,spare (now {p.size.min},{p.size.max},{p.size.spare}).</p>,
                    input: { label: 'min,max,spare', value: `${p.size.min},${p.size.max},${p.size.spare}` },
                    run: async (v) => {
                      const [min, max, spare] = v.split(',').map((x) => Number(x.trim()));
                      await api.post(`/pools/${enc(p.name)}/resize`, { min, max, spare });
                      reload();
                      return `Pool ${p.name} resized to ${min}/${max}/${spare}.`;
                    },
                  })}>Resize</button>
                  <button type="button" onClick={() => ask({
                    title: `${p.maintenance ? 'End' : 'Start'} maintenance of ${p.name}`, action: p.maintenance ? 'End maintenance' : 'Start maintenance',
                    body: <p>{p.maintenance ? 'Users can launch desktops again.' : 'Users cannot launch new sessions; running ones continue.'}</p>,
                    run: async () => {
                      await api.patch(`/pools/${enc(p.name)}`, { maintenance: !p.maintenance });
                      reload();
                      return `Maintenance ${p.maintenance ? 'off' : 'on'} for ${p.name}.`;
                    },
                  })}>{p.maintenance ? 'Maintenance off' : 'Maintenance on'}</button>
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
