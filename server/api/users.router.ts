import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { userParams, groupParams, newUserBody, userPatchBody, newGroupBody, groupPatchBody } from './schemas.ts';

export function userRoutes(t: RouteTable, { identity }: ApiDeps): void {
  t.add({ method: 'get', path: '/users', tag: 'users', summary: 'All users', role: 'helpdesk', handler: async () => ({ users: await identity.listUsers() }) });
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
