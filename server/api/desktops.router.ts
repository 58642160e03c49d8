import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { idParams, poolName, desktopState, username } from './schemas.ts';

export function desktopRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({
    method: 'get', path: '/desktops', tag: 'desktops', summary: 'Desktops, filtered', role: 'helpdesk',
    query: z.strictObject({ pool: poolName.optional(), state: desktopState.optional(), user: username.optional(), host: z.string().max(64).regex(/^[A-Za-z0-9._-]*$/).optional(), name: z.string().max(64).regex(/^[a-z0-9-]*$/).optional() }),
    handler: async ({ query }) => ({ desktops: await broker.desktops.list(query) }),
  });
  t.add({
    method: 'get', path: '/desktops/:id', tag: 'desktops', summary: 'One desktop', role: 'helpdesk', params: idParams, errors: ['not_found'],
    handler: async ({ params }) => ({ desktop: await broker.desktops.get(params.id) }),
  });
  const action = (name: 'refresh' | 'reset' | 'unassign', summary: string) =>
    t.add({
      method: 'post', path: `/desktops/:id/${name}`, tag: 'desktops', summary, role: 'helpdesk', params: idParams, errors: ['not_found', 'illegal_transition', 'desktop_in_use', 'provider_error'],
      handler: async ({ params, actor }) => ({ desktop: await broker.desktops[name](actor, params.id) }),
    });
  action('refresh', 'Refresh: end its session and revert it to a clean clone of its image');
  action('reset', 'Hard reset (power cycle); the session stays');
  action('unassign', 'Take a dedicated desktop back from its user');
  t.add({
    method: 'post', path: '/desktops/:id/assign', tag: 'desktops', summary: 'Give a ready desktop of a dedicated pool to a user', role: 'helpdesk',
    params: idParams, body: z.strictObject({ user: username }), errors: ['not_found', 'illegal_transition', 'already_exists', 'conflict'],
    handler: async ({ params, body, actor }) => ({ desktop: await broker.desktops.assign(actor, params.id, body.user) }),
  });
  t.add({
    method: 'delete', path: '/desktops/:id', tag: 'desktops', summary: 'Delete: end its session and destroy it', role: 'helpdesk', params: idParams, status: 202, errors: ['not_found', 'illegal_transition'],
    handler: async ({ params, actor }) => ({ desktop: await broker.desktops.remove(actor, params.id) }),
  });
}
