// Users: the server-paged table (search, sort, role / group / disabled filters in the URL) with
// create (admin), disable / enable, unlock, reset second factors, role and group membership.
// Forms keep what was typed when the server refuses it, with the message next to the field.
import { useState } from 'preact/hooks';
import { api, describeError, enc, fieldError, type ListAnswer } from '../api.ts';
import type { User } from '../types.ts';
import { useActions } from '../ui.tsx';
import { Table, useUrlQuery, type Column } from './Table.tsx';
import { t } from '../i18n/index.ts';

const ROLES = ['user', 'helpdesk', 'admin'] as const;

function NewUser(props: { onSaved: (text: string) => void; onCancel: () => void }) {
  const [v, setV] = useState({ id: '', displayName: '', role: 'user', password: '', groups: '' });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState('');
  const set = (k: keyof typeof v) => (e: Event) => { setV({ ...v, [k]: (e.target as HTMLInputElement).value }); setErrors({}); };
  const err = (k: string) => errors[k] ? <span class="field-error" role="alert" data-error-for={k}>{errors[k]}</span> : null;
  return (
    <form class="card pool-form" data-testid="user-form" onSubmit={async (e) => {
      e.preventDefault();
      setFailure('');
      try {
        const groups = v.groups.split(/[\s,]+/).filter(Boolean);
        await api.post('/users', { id: v.id.trim(), ...(v.displayName ? { displayName: v.displayName } : {}), role: v.role, password: v.password, ...(groups.length ? { groups } : {}) });
        props.onSaved(t('users.created', { id: v.id.trim().toLowerCase() }));
      } catch (x) {
        const f = fieldError(x);
        const k = f?.field.split('.')[0] ?? '';
        if (f && k in v) setErrors({ [k]: f.message });
        else setFailure(t('users.createFailed', { error: describeError(x) }));
      }
    }}>
      <h2>{t('users.newUser')}</h2>
      {failure && <p class="banner bad" role="alert">{failure}</p>}
      <label>{t('users.userName')}{' '}<input name="id" required value={v.id} onInput={set('id')} />{err('id')}</label>
      <label>{t('users.displayName')}{' '}<input name="displayName" value={v.displayName} onInput={set('displayName')} />{err('displayName')}</label>
      <label>{t('users.role')}{' '}<select name="role" value={v.role} onChange={set('role')}>{ROLES.map((r) => <option key={r} value={r}>{t(`role.${r}`, { defaultValue: r })}</option>)}</select>{err('role')}</label>
      <label>{t('users.password')}{' '}<input name="password" type="password" autocomplete="new-password" required value={v.password} onInput={set('password')} />{err('password')}</label>
      <label>{t('users.groups')}{' '}<input name="groups" value={v.groups} onInput={set('groups')} placeholder={t('users.staffLab')} />{err('groups')}</label>
      <div class="buttons"><button type="button" onClick={props.onCancel}>{t('users.cancel')}</button><button class="primary">{t('users.create')}</button></div>
    </form>
  );
}

export function Users() {
  const url = useUrlQuery();
  const { ask, dialog, banner } = useActions();
  const [bump, setBump] = useState(0);
  const [creating, setCreating] = useState(false);
  const [note, setNote] = useState('');
  const after = (t: string) => { setBump((n) => n + 1); return t; };
  const columns: Column<User>[] = [
    { key: 'id', label: t('users.user'), sortable: true, render: (u) => u.id },
    { key: 'displayName', label: t('users.name'), sortable: true, render: (u) => u.displayName },
    { key: 'role', label: t('users.role'), sortable: true, render: (u) => t(`role.${u.role}`, { defaultValue: u.role }) },
    { key: 'groups', label: t('users.groups'), render: (u) => u.groups.join(', ') },
    { key: 'disabled', label: t('users.status'), sortable: true, render: (u) => (u.disabled ? <span class="bad">{t('users.disabled')}</span> : t('users.active')) },
  ];
  const sel = (k: string) => (e: Event) => url.set({ [k]: (e.target as HTMLSelectElement).value });
  return (
    <section>
      <h1>{t('users.users')}{' '}<button type="button" onClick={() => setCreating(true)}>{t('users.newUser')}</button></h1>
      {banner}
      {note && <p class="banner ok" role="status">{note}</p>}
      {creating && <NewUser onSaved={(t) => { setNote(t); setCreating(false); setBump((n) => n + 1); }} onCancel={() => setCreating(false)} />}
      <Table<User>
        url={url}
        testId="users-table"
        columns={columns}
        rowKey={(u) => u.id}
        rowAttrs={(u) => ({ 'data-user': u.id })}
        load={(qs) => api.get<ListAnswer<User>>(`/users?${qs}`)}
        filterKeys={['role', 'group', 'disabled']}
        defaultSort="id"
        searchLabel={t('users.searchUsers')}
        empty={t('users.noUsersMatch')}
        reloadKey={bump}
        filters={
          <>
            <label>{t('users.role')}{' '}<select name="role" value={url.get('role')} onChange={sel('role')}><option value="">{t('users.any')}</option>{ROLES.map((r) => <option key={r} value={r}>{t(`role.${r}`, { defaultValue: r })}</option>)}</select></label>
            <label>{t('users.status')}{' '}<select name="disabled" value={url.get('disabled')} onChange={sel('disabled')}><option value="">{t('users.any')}</option><option value="false">{t('users.active')}</option><option value="true">{t('users.disabled')}</option></select></label>
          </>
        }
        actions={(u) => (
          <>
            <button type="button" onClick={() => ask({
              title: t(u.disabled ? 'users.enableName' : 'users.disableName', { id: u.id }), action: u.disabled ? t('users.enable') : t('users.disable'), danger: !u.disabled,
              body: <p>{t(u.disabled ? 'users.enableBody' : 'users.disableBody', { id: u.id })}</p>,
              run: async () => { await api.patch(`/users/${enc(u.id)}`, { disabled: !u.disabled }); return after(t(u.disabled ? 'users.enabled' : 'users.disabledName', { id: u.id })); },
            })}>{u.disabled ? t('users.enable') : t('users.disable')}</button>
            <button type="button" onClick={() => ask({
              title: t('users.unlockName', { id: u.id }), action: t('users.unlock'), body: <p>{t('users.unlockBody', { id: u.id })}</p>,
              run: async () => { await api.post(`/users/${enc(u.id)}/unlock`); return after(t('users.unlocked', { id: u.id })); },
            })}>{t('users.unlock')}</button>
            <button type="button" onClick={() => ask({
              title: t('usersM.resetIdSSecondFactors', { id: u.id }), action: t('users.resetSecondFactors'), danger: true,
              body: <p>{t('userfactors.resetBody', { user: u.id })}</p>,
              run: async () => { await api.del(`/users/${enc(u.id)}/mfa`); return after(t('userfactorsM.userSSecondFactorsWere', { user: u.id })); },
            })}>{t('users.resetMfa')}</button>
            <button type="button" onClick={() => ask({
              title: t('usersM.roleOfId', { id: u.id }), action: t('users.changeRole'), body: <p>{t('users.roleNow', { role: t(`role.${u.role}`, { defaultValue: u.role }) })}</p>, input: { label: t('users.role'), options: [u.role, ...ROLES.filter((r) => r !== u.role)] },
              run: async (r) => { await api.patch(`/users/${enc(u.id)}`, { role: r }); return after(t('users.roleChanged', { id: u.id, role: t(`role.${r}`, { defaultValue: r }) })); },
            })}>{t('users.role')}</button>
            <button type="button" onClick={() => ask({
              title: t('usersM.groupsOfId', { id: u.id }), action: t('users.saveGroups'), body: <p>{t('users.groupNamesSeparatedByCommas')}</p>, input: { label: t('users.groups'), value: u.groups.join(', ') || ' ' },
              run: async (g) => { const groups = g.split(/[\s,]+/).filter(Boolean); await api.patch(`/users/${enc(u.id)}`, { groups }); return after(t('users.groupsSet', { id: u.id, groups: groups.join(', ') || t('users.noGroups') })); },
            })}>{t('users.groups')}</button>
          </>
        )}
      />
      {dialog}
    </section>
  );
}
