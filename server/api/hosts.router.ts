import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { identifier } from './schemas.ts';

const hostParams = z.strictObject({ provider: identifier(64), host: identifier(64) });

export function hostRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({ method: 'get', path: '/hosts', tag: 'hosts', summary: 'Hosts of every provider with capacity and load', role: 'helpdesk', handler: async () => ({ hosts: await broker.hosts.list() }) });
  t.add({
    method: 'post', path: '/hosts/:provider/:host/maintenance', tag: 'hosts', summary: 'Maintenance on or off: a host in maintenance takes no new desktops', role: 'admin',
    params: hostParams, body: z.strictObject({ on: z.boolean() }), errors: ['not_found'],
    handler: async ({ params, body, actor }) => ({ host: await broker.hosts.setMaintenance(actor, params.provider, params.host, body.on) }),
  });
  t.add({
    method: 'post', path: '/hosts/:provider/:host/drain', tag: 'hosts', summary: 'Drain: maintenance on, then live-migrate every desktop away (in the background)', role: 'admin', status: 202,
    params: hostParams, errors: ['not_found'],
    handler: async ({ params, actor }) => broker.hosts.drain(actor, params.provider, params.host),
  });
}
