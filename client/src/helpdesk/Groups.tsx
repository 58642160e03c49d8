// Groups: the broker's local groups (GET /groups) with their members and the pools they are
// entitled to (a pool's entitlements.groups). Create, change members, entitle to a pool or take
// the entitlement back, delete; each confirmed, refusals shown next to the field.
import { useState } from 'preact/hooks';
import { api, describeError, enc, fieldError } from '../api.ts';
import type { Pool } from '../types.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';

interface Group { name: string; displayName: string; members: string[]; createdAt: string }

const list = (s: string) => s.split(/[\s,]+/).filter(Boolean);

export function Groups() {
  const groups = usePoll(() => api.get<{ groups: Group[] }>('/groups'), 10_000, [], true);
  const pools = usePoll(() => api.get<{ pools: Pool[] }>('/pools'), 10_000, [], true);
  const { ask, dialog, banner } = useActions();
  const [v, setV] = useState({ name: '', displayName: '', members: '' });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  const reload = () => { groups.reload(); pools.reload(); };
  const entitle = async (pool: Pool, group: string, on: boolean) => {
    const gs = on ? [...new Set([...pool.entitlements.groups, group])] : pool.entitlements.groups.filter((g) => g !== group);
    await api.patch(`/pools/${enc(pool.name)}`, { entitlements: { users: pool.entitlements.users, groups: gs } });
    reload();
  };
  const set = (k: keyof typeof v) => (e: Event) => { setV({ ...v, [k]: (e.target as HTMLInputElement).value }); setErrors({}); };
  return (
    <section>
      <h1>{t('groups.groups')}</h1>
      <ErrorLine error={groups.error} />
      {banner}
      {note && <p class={note.ok ? 'banner ok' : 'banner bad'} role="status">{note.text}</p>}
      <form class="card pool-form" data-testid="group-form" onSubmit={async (e) => {
        e.preventDefault();
        try {
          await api.post('/groups', { name: v.name.trim(), ...(v.displayName ? { displayName: v.displayName } : {}), members: list(v.members) });
          setNote({ ok: true, text: t('groupsM.groupVCreated', { v: v.name.trim() }) });
          setV({ name: '', displayName: '', members: '' });
          reload();
        } catch (x) {
          const f = fieldError(x);
          const k = f?.field.split('.')[0] ?? '';
          if (f && k in v) setErrors({ [k]: f.message });
          else setNote({ ok: false, text: t('groupsM.creatingTheGroupFailedX', { x: describeError(x) }) });
        }
      }}>
        <h2>{t('groups.newGroup')}</h2>
        <label>{t('groups.name')}{' '}<input name="name" required value={v.name} onInput={set('name')} />{errors.name && <span class="field-error" role="alert">{errors.name}</span>}</label>
        <label>{t('groups.displayName')}{' '}<input name="displayName" value={v.displayName} onInput={set('displayName')} />{errors.displayName && <span class="field-error" role="alert">{errors.displayName}</span>}</label>
        <label>{t('groups.members')}{' '}<input name="members" value={v.members} onInput={set('members')} placeholder={t('groups.aliceBob')} />{errors.members && <span class="field-error" role="alert">{errors.members}</span>}</label>
        <div class="buttons"><button class="primary">{t('groups.createGroup')}</button></div>
      </form>
      <table class="grid">
        <thead><tr><th>{t('groups.group')}</th><th>{t('groups.members')}</th><th>{t('groups.entitledPools')}</th><th>{t('groups.actions')}</th></tr></thead>
        <tbody>
          {groups.data?.groups.map((g) => {
            const entitled = (pools.data?.pools ?? []).filter((p) => p.entitlements.groups.includes(g.name));
            const others = (pools.data?.pools ?? []).filter((p) => !p.entitlements.groups.includes(g.name) && !p.deleting);
            return (
              <tr key={g.name} data-group={g.name}>
                <td>{g.displayName || g.name}<br /><span class="muted">{g.name}</span></td>
                <td data-testid="members">{g.members.join(', ') || <span class="muted">{t('groups.none')}</span>}</td>
                <td data-testid="entitled">{entitled.map((p) => (
                  <span key={p.name} class="badge">{p.name} <button type="button" aria-label={t('groups.removeFrom', { group: g.name, pool: p.name })} onClick={() => ask({
                    title: t('groupsM.takeNameFromName2', { name: p.name, name2: g.name }), action: t('groups.removeEntitlement'), danger: true, body: <p>{t('groups.removeBody', { group: g.name, pool: p.name })}</p>,
                    run: async () => { await entitle(p, g.name, false); return t('groupsM.nameIsNoLongerEntitled', { name: g.name, name2: p.name }); },
                  })}>×</button></span>
                ))}</td>
                <td class="actions">
                  <button type="button" onClick={() => ask({
                    title: t('groupsM.membersOfName', { name: g.name }), action: t('groups.saveMembers'), body: <p>{t('groups.userNamesSeparatedByCommas')}</p>, input: { label: t('groups.members'), value: g.members.join(', ') || ' ' },
                    run: async (m) => { await api.patch(`/groups/${enc(g.name)}`, { members: list(m) }); reload(); return t('groups.hasMembers', { name: g.name, count: list(m).length }); },
                  })}>{t('groups.members')}</button>
                  <button type="button" disabled={!others.length} onClick={() => ask({
                    title: t('groupsM.entitleNameToAPool', { name: g.name }), action: t('groups.entitle'), body: <p>{t('groups.entitleBody', { group: g.name })}</p>, input: { label: t('groups.pool'), options: others.map((p) => p.name) },
                    run: async (name) => { const p = others.find((x) => x.name === name)!; await entitle(p, g.name, true); return t('groupsM.nameIsEntitledToName2', { name: g.name, name2: name }); },
                  })}>{t('groups.entitleToPool')}</button>
                  <button type="button" class="danger" onClick={() => ask({
                    title: t('groupsM.deleteGroupName', { name: g.name }), action: t('groups.deleteGroup'), danger: true, body: <p>{t('groups.itsMembersLoseWhatThe')}</p>,
                    run: async () => { await api.del(`/groups/${enc(g.name)}`); reload(); return t('groupsM.groupNameDeleted', { name: g.name }); },
                  })}>{t('groups.delete')}</button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {groups.data && groups.data.groups.length === 0 && <p class="muted">{t('groups.noGroupsYet')}</p>}
      {dialog}
    </section>
  );
}
