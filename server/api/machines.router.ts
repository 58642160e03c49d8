import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { poolName } from './schemas.ts';
import { machineName, machineSpecSchema, machineUpdateSchema } from '../providers/manual/index.ts';

const machineParams = z.strictObject({ name: machineName });

// Machines of manual pools. Answers never carry credentials: hasUsername / hasPassword only.
export function machineRoutes(t: RouteTable, { machines }: ApiDeps): void {
  t.add({
    method: 'get', path: '/machines', tag: 'machines', summary: 'Machines of manual pools, with console health and their desktop', role: 'helpdesk',
    query: z.strictObject({ pool: poolName.optional() }),
    handler: async ({ query }) => ({ machines: await machines.list(query.pool ? { pool: query.pool } : {}) }),
  });
  t.add({
    method: 'get', path: '/machines/:name', tag: 'machines', summary: 'One machine (by name or id)', role: 'helpdesk',
    params: machineParams, errors: ['not_found'],
    handler: async ({ params }) => ({ machine: await machines.get(params.name) }),
  });
  t.add({
    method: 'post', path: '/machines', tag: 'machines', summary: 'Add an existing machine to a manual pool: it becomes a desktop, ready once its console answers', role: 'admin', status: 201,
    body: machineSpecSchema, errors: ['not_found', 'already_exists', 'guacd_required'],
    handler: async ({ body, actor }) => ({ machine: await machines.add(actor, body) }),
  });
  t.add({
    method: 'post', path: '/machines/import', tag: 'machines', summary: 'Add machines from CSV (header: name,pool,protocol,address[,port,username,password,domain,security,ignoreCert,mac,agent]); answers what was added and each refused line', role: 'admin',
    body: z.strictObject({ csv: z.string().min(1).max(2_000_000) }), errors: ['guacd_required'],
    handler: async ({ body, actor }) => machines.importCsv(actor, body.csv),
  });
  t.add({
    method: 'patch', path: '/machines/:name', tag: 'machines', summary: "Change a machine's console, credentials (password '' clears), Wake-on-LAN MAC or agent flag", role: 'admin',
    params: machineParams, body: machineUpdateSchema, errors: ['not_found', 'already_exists', 'guacd_required'],
    handler: async ({ params, body, actor }) => ({ machine: await machines.update(actor, params.name, body) }),
  });
  t.add({
    method: 'delete', path: '/machines/:name', tag: 'machines', summary: 'Remove a machine from its pool (the machine itself is not touched); refused while a session is on it', role: 'admin',
    params: machineParams, errors: ['not_found', 'desktop_in_use', 'conflict'],
    handler: async ({ params, actor }) => machines.remove(actor, params.name),
  });
}
