import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';

const streamId = z.string().regex(/^\d{1,16}-\d{1,10}$/, 'expected an audit entry id');
const time = z.iso.datetime({ offset: true }).transform((s) => Date.parse(s));

export function auditRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({
    method: 'get', path: '/audit', tag: 'audit', summary: 'The audit trail, newest first, filtered (`q`: a case-insensitive substring of actor, action, target, address or details); paged with `before` = the previous answer\'s `next`', role: 'helpdesk',
    query: z.strictObject({
      actor: z.string().max(80).regex(/^[A-Za-z0-9:._-]*$/).optional(),
      action: z.string().max(64).regex(/^[a-z.]*$/).optional(),
      targetType: z.string().max(32).regex(/^[a-z]*$/).optional(),
      target: z.string().max(80).regex(/^[A-Za-z0-9:._-]*$/).optional(),
      outcome: z.enum(['ok', 'denied', 'failed']).optional(),
      q: z.string().trim().max(100).regex(/^[^\0<>]*$/, 'no < > or NUL characters').optional(),
      since: time.optional(),
      until: time.optional(),
      before: streamId.optional(),
      limit: z.coerce.number().int().min(1).max(500).default(100),
    }),
    handler: async ({ query }) => broker.audit.query(query),
  });
}
