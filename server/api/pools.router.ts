import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { poolParams } from './schemas.ts';
import { poolSpecSchema, poolUpdateSchema, poolSizes } from '../broker/index.ts';

export function poolRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({ method: 'get', path: '/pools', tag: 'pools', summary: 'All pools with desktop counts by state', role: 'helpdesk', handler: async () => ({ pools: await broker.pools.list() }) });
  t.add({
    method: 'get', path: '/pools/:name', tag: 'pools', summary: 'One pool', role: 'helpdesk', params: poolParams, errors: ['not_found'],
    handler: async ({ params }) => ({ pool: await broker.pools.get(params.name) }),
  });
  t.add({
    method: 'post', path: '/pools', tag: 'pools', summary: 'Create a pool', role: 'admin', body: poolSpecSchema, status: 201, errors: ['already_exists'],
    handler: async ({ body, actor }) => ({ pool: await broker.pools.create(body, actor) }),
  });
  t.add({
    method: 'patch', path: '/pools/:name', tag: 'pools', summary: 'Change a pool', role: 'admin', params: poolParams, body: poolUpdateSchema, errors: ['not_found'],
    handler: async ({ params, body, actor }) => ({ pool: await broker.pools.update(params.name, body, actor) }),
  });
  t.add({
    method: 'post', path: '/pools/:name/resize', tag: 'pools', summary: 'Set min / max / spare', role: 'admin', params: poolParams, body: poolSizes, errors: ['not_found'],
    handler: async ({ params, body, actor }) => ({ pool: await broker.pools.update(params.name, { size: body }, actor, 'pool.resize') }),
  });
  t.add({
    method: 'delete', path: '/pools/:name', tag: 'pools', summary: 'Delete a pool: its sessions end and its desktops are destroyed', role: 'admin', params: poolParams, status: 202, errors: ['not_found'],
    handler: async ({ params, actor }) => {
      await broker.pools.remove(params.name, actor);
      return { deleting: true };
    },
  });
}
