import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { userParams, groupParams, username, identifier, displayText, password, role } from './schemas.ts';

export function userRoutes(t: RouteTable, { identity }: ApiDeps): void {
  t.add({ method: 'get', path: '/users', tag: 'users', summary: 'All users', role: 'helpdesk', handler: async () => ({ users: await identity.listUsers() }) });
  t.add({
    method: 'get', path: '/users/:id', tag: 'users', summary: 'One user', role: 'helpdesk', params: userParams, errors: ['not_found'],
    handler: async ({ params }) => ({ user: await identity.getUser(params.id) }),
  });
  t.add({
    method: 'post', path: '/users', tag: 'users', summary: 'Create a local user', role: 'admin', status: 201, errors: ['already_exists'],
    body: z.strictObject({ id: username, displayName: displayText(80).optional(), role: role.default('user'), password, groups: z.array(identifier()).max(100).optional() }),
    handler: async ({ body, actor }) => ({ user: await identity.createUser(actor, body) }),
  });
  t.add({
    method: 'patch', path: '/users/:id', tag: 'users', summary: 'Change a user (role, password, groups, disabled)', role: 'admin', params: userParams, errors: ['not_found'],
    body: z.strictObject({ displayName: displayText(80).optional(), role: role.optional(), password: password.optional(), disabled: z.boolean().optional(), groups: z.array(identifier()).max(100).optional() }),
    handler: async ({ params, body, actor }) => ({ user: await identity.updateUser(actor, params.id, body) }),
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
    body: z.strictObject({ name: identifier(), displayName: displayText(80).optional(), members: z.array(username).max(10_000).optional() }),
    handler: async ({ body, actor }) => ({ group: await identity.createGroup(actor, body) }),
  });
  t.add({
    method: 'patch', path: '/groups/:name', tag: 'groups', summary: 'Change a group (display name, members)', role: 'admin', params: groupParams, errors: ['not_found'],
    body: z.strictObject({ displayName: displayText(80).optional(), members: z.array(username).max(10_000).optional() }),
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
