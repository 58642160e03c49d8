// The overview's server-side figures: 24 h of history per pool (server/jobs/pool-history.ts
// writes a sample a minute) and the alerts computed from the live state.
import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';

const sample = z.object({ t: z.number(), ready: z.number(), inUse: z.number(), provisioning: z.number(), error: z.number(), connected: z.number(), disconnected: z.number() });

export function statsRoutes(t: RouteTable, { overview }: ApiDeps): void {
  t.add({
    method: 'get', path: '/stats/history', tag: 'stats', role: 'helpdesk',
    summary: 'Desktops by state (ready, in use incl. assigned, provisioning incl. refreshing, error) and sessions (connected, disconnected) per pool and in total, one sample per minute, the last `hours` (default 24, at most 24)',
    query: z.strictObject({ hours: z.coerce.number().min(0.1).max(24).default(24) }),
    response: z.object({ from: z.number(), to: z.number(), pools: z.array(z.object({ pool: z.string(), samples: z.array(sample) })), total: z.array(sample) }),
    handler: async ({ query }) => overview.historyOf(query.hours),
  });
  t.add({
    method: 'get', path: '/alerts', tag: 'stats', role: 'helpdesk',
    summary: 'What needs the helpdesk now, worst first: pools without a ready spare, desktops in error (quarantined), unavailable shares',
    response: z.object({ alerts: z.array(z.object({ id: z.string(), kind: z.string(), severity: z.enum(['warning', 'critical']), target: z.object({ type: z.string(), id: z.string() }), message: z.string() })) }),
    handler: async () => ({ alerts: await overview.alerts() }),
  });
}
