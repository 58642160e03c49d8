import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { identifier } from './schemas.ts';

const hostParams = z.strictObject({ provider: identifier(64), host: identifier(64) });

export function hostRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({ method: 'get', path: '/hosts', tag: 'hosts', summary: 'Hosts of every provider with capacity and load, maintenance, and their latest drain (state and progress)', role: 'helpdesk', handler: async () => ({ hosts: await broker.hosts.list() }) });
  t.add({
    method: 'post', path: '/hosts/:provider/:host/maintenance', tag: 'hosts', summary: 'Maintenance on or off: a host in maintenance takes no new desktops', role: 'admin',
    params: hostParams, body: z.strictObject({ on: z.boolean() }), errors: ['not_found'],
    handler: async ({ params, body, actor }) => ({ host: await broker.hosts.setMaintenance(actor, params.provider, params.host, body.on) }),
  });
  t.add({
    method: 'post', path: '/hosts/:provider/:host/drain', tag: 'hosts', summary: 'Drain: maintenance on, then the drain reconciler live-migrates every desktop away; answers the drain record', role: 'admin', status: 202,
    params: hostParams, errors: ['not_found', 'not_supported'],
    handler: async ({ params, actor }) => ({ drain: await broker.hosts.drain(actor, params.provider, params.host) }),
  });
  t.add({
    method: 'get', path: '/hosts/:provider/:host/drain', tag: 'hosts', summary: "The host's latest drain: state, and each desktop moved, pending or failed with its reason", role: 'helpdesk',
    params: hostParams, errors: ['not_found'],
    handler: async ({ params }) => ({ drain: await broker.hosts.drainStatus(params.provider, params.host) }),
  });
  t.add({
    method: 'delete', path: '/hosts/:provider/:host/drain', tag: 'hosts', summary: 'Cancel the running drain (a migration in flight finishes; the host stays in maintenance)', role: 'admin',
    params: hostParams, errors: ['not_found'],
    handler: async ({ params, actor }) => ({ drain: await broker.hosts.cancelDrain(actor, params.provider, params.host) }),
  });
}
