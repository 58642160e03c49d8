import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { z } from 'zod';
import { pageQuery, pageAnswer } from './paging.ts';
import { ROLES } from '../broker/index.ts';
import { identifier, userParams, groupParams, newUserBody, userPatchBody, newGroupBody, groupPatchBody } from './schemas.ts';

const USER_SORTS = ['id', 'displayName', 'role', 'disabled'] as const;

export function userRoutes(t: RouteTable, { identity }: ApiDeps): void {
  t.add({
    method: 'get', path: '/users', tag: 'users', role: 'helpdesk',
    summary: 'All users as `{users}`; with `limit` one page of the helpdesk table: `{items, total, nextCursor?}` (search `q` over id, display name, role, groups; filters `role`, `group`, `disabled`; `sort`, `order`, `offset` or `cursor`)',
    query: z.strictObject({ role: z.enum(ROLES).optional(), group: identifier().optional(), disabled: z.enum(['true', 'false']).optional(), ...pageQuery(USER_SORTS) }),
    handler: async ({ query }) => {
      const { q, sort, order, limit, offset, cursor, role, group, disabled } = query;
      const all = await identity.listUsers();
      if (limit === undefined && !role && !group && !disabled) return { users: all };
      const needle = (q ?? '').toLowerCase();
      const rows = all.filter((u) => (!role || u.role === role) && (!group || u.groups.includes(group)) && (!disabled || String(!!u.disabled) === disabled)
        && (!needle || [u.id, u.displayName, u.role, ...u.groups].join('\n').toLowerCase().includes(needle)));
      const key = sort ?? 'id';
      const dir = order === 'desc' ? -1 : 1;
      rows.sort((a, b) => dir * (String(a[key] ?? '').localeCompare(String(b[key] ?? '')) || a.id.localeCompare(b.id)));
      if (limit === undefined) return { users: rows };
      const start = cursor ?? offset ?? 0;
      return pageAnswer({ items: rows.slice(start, start + limit), total: rows.length }, start, limit);
    },
  });
  t.add({
    method: 'get', path: '/users/:id', tag: 'users', summary: 'One user', role: 'helpdesk', params: userParams, errors: ['not_found'],
    handler: async ({ params }) => ({ user: await identity.getUser(params.id) }),
  });
  t.add({
    method: 'post', path: '/users', tag: 'users', summary: 'Create a local user', role: 'admin', status: 201, errors: ['already_exists'],
    body: newUserBody,
    handler: async ({ body, actor }) => ({ user: await identity.createUser(actor, body) }),
  });
  t.add({
    method: 'patch', path: '/users/:id', tag: 'users', summary: 'Change a user (role, password, groups, disabled)', role: 'admin', params: userParams, errors: ['not_found'],
    body: userPatchBody,
    handler: async ({ params, body, actor }) => ({ user: await identity.updateUser(actor, params.id, body) }),
  });
  t.add({
    method: 'get', path: '/users/:id/lockout', tag: 'users', summary: "The user's login throttling: locked, throttled, failing or clear", role: 'helpdesk', params: userParams, errors: ['not_found'],
    handler: async ({ params }) => ({ lockout: await identity.lockoutOf(params.id) }),
  });
  t.add({
    method: 'post', path: '/users/:id/unlock', tag: 'users', summary: "Clear the user's login lock, waits and per-address blocks (audited)", role: 'helpdesk', params: userParams, errors: ['not_found'],
    handler: async ({ params, actor }) => ({ lockout: await identity.unlockUser(actor, params.id) }),
  });
  t.add({
    method: 'delete', path: '/users/:id', tag: 'users', summary: 'Delete a user', role: 'admin', params: userParams, status: 204, errors: ['not_found', 'conflict'],
    handler: async ({ params, actor }) => {
      await identity.deleteUser(actor, params.id);
      return undefined;
    },
  });

  t.add({ method: 'get', path: '/groups', tag: 'groups', summary: 'All groups', role: 'helpdesk', handler: async () => ({ groups: await identity.listGroups() }) });
  t.add({
    method: 'get', path: '/groups/:name', tag: 'groups', summary: 'One group', role: 'helpdesk', params: groupParams, errors: ['not_found'],
    handler: async ({ params }) => ({ group: await identity.getGroup(params.name) }),
  });
  t.add({
    method: 'post', path: '/groups', tag: 'groups', summary: 'Create a group', role: 'admin', status: 201, errors: ['already_exists'],
    body: newGroupBody,
    handler: async ({ body, actor }) => ({ group: await identity.createGroup(actor, body) }),
  });
  t.add({
    method: 'patch', path: '/groups/:name', tag: 'groups', summary: 'Change a group (display name, members)', role: 'admin', params: groupParams, errors: ['not_found'],
    body: groupPatchBody,
    handler: async ({ params, body, actor }) => ({ group: await identity.updateGroup(actor, params.name, body) }),
  });
  t.add({
    method: 'delete', path: '/groups/:name', tag: 'groups', summary: 'Delete a group', role: 'admin', params: groupParams, status: 204, errors: ['not_found'],
    handler: async ({ params, actor }) => {
      await identity.deleteGroup(actor, params.name);
      return undefined;
    },
  });
}
