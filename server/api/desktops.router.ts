import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { idParams, poolName, desktopState, username } from './schemas.ts';
import { bulkIds, pageAnswer, pageQuery } from './paging.ts';

const DESKTOP_SORTS = ['name', 'pool', 'state', 'user', 'host', 'image'] as const;

export function desktopRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({
    method: 'get', path: '/desktops', tag: 'desktops', role: 'helpdesk',
    summary: 'Desktops, filtered. With `limit` one page of the helpdesk table: `{items, total, nextCursor?}` (search `q`, `sort`, `order`, `offset`, or `cursor` = the previous answer\'s nextCursor); without it every match as `{desktops}`',
    query: z.strictObject({
      pool: poolName.optional(), state: desktopState.optional(), user: username.optional(),
      host: z.string().max(64).regex(/^[A-Za-z0-9._-]*$/).optional(), name: z.string().max(64).regex(/^[a-z0-9-]*$/).optional(),
      ...pageQuery(DESKTOP_SORTS),
    }),
    handler: async ({ query }) => {
      const { q, sort, order, limit, offset, cursor, ...filter } = query;
      if (limit === undefined) return { desktops: await broker.desktops.list(filter) };
      const start = cursor ?? offset ?? 0;
      const page = await broker.desktops.page({ ...filter, ...(q ? { q } : {}), ...(sort ? { sort } : {}), order, offset: start, limit });
      return pageAnswer(page, start, limit);
    },
  });
  t.add({
    method: 'post', path: '/desktops/bulk', tag: 'desktops', role: 'helpdesk', auditAction: 'desktop.bulk',
    summary: 'Refresh, reset or delete up to 500 desktops: each is done (and audited) as the single action would be; `results` has every id\'s outcome',
    body: z.strictObject({ action: z.enum(['refresh', 'reset', 'delete']), ids: bulkIds }),
    handler: async ({ body, actor }) => ({ results: await broker.desktops.bulk(actor, body.action, body.ids) }),
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
  const snapParams = z.strictObject({ id: z.uuid(), snapshot: z.string().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, _ . -') });
  t.add({
    method: 'get', path: '/desktops/:id/snapshots', tag: 'desktops', summary: "A desktop's snapshots", role: 'helpdesk', params: idParams, errors: ['not_found', 'provider_error'],
    handler: async ({ params }) => ({ snapshots: await broker.desktops.snapshots(params.id) }),
  });
  t.add({
    method: 'post', path: '/desktops/:id/snapshots', tag: 'desktops', summary: 'Take a snapshot (disk and memory)', role: 'helpdesk', params: idParams, status: 201,
    body: z.strictObject({ name: z.string().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, _ . -') }), errors: ['not_found', 'illegal_transition', 'provider_error'],
    handler: async ({ params, body, actor }) => ({ snapshot: await broker.desktops.snapshotCreate(actor, params.id, body.name) }),
  });
  t.add({
    method: 'post', path: '/desktops/:id/snapshots/:snapshot/revert', tag: 'desktops', summary: 'Revert to a snapshot', role: 'helpdesk', params: snapParams, errors: ['not_found', 'illegal_transition', 'provider_error'],
    handler: async ({ params, actor }) => {
      await broker.desktops.snapshotRevert(actor, params.id, params.snapshot);
      return { reverted: params.snapshot };
    },
  });
  t.add({
    method: 'delete', path: '/desktops/:id/snapshots/:snapshot', tag: 'desktops', summary: 'Delete a snapshot', role: 'helpdesk', params: snapParams, status: 204, errors: ['not_found', 'provider_error'],
    handler: async ({ params, actor }) => {
      await broker.desktops.snapshotDelete(actor, params.id, params.snapshot);
      return undefined;
    },
  });
  t.add({
    method: 'post', path: '/desktops/:id/migrate', tag: 'desktops', summary: 'Live-migrate to another host of its provider', role: 'helpdesk', params: idParams,
    body: z.strictObject({ host: z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9._-]*$/) }), errors: ['not_found', 'illegal_transition', 'provider_error'],
    handler: async ({ params, body, actor }) => ({ migration: await broker.desktops.migrate(actor, params.id, body.host) }),
  });
  t.add({
    method: 'delete', path: '/desktops/:id', tag: 'desktops', summary: 'Delete: end its session and destroy it', role: 'helpdesk', params: idParams, status: 202, errors: ['not_found', 'illegal_transition'],
    handler: async ({ params, actor }) => ({ desktop: await broker.desktops.remove(actor, params.id) }),
  });
}
