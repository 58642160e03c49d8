import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { idParams, poolName, sessionMessageBody, sessionState, sessionView, username } from './schemas.ts';
import { bulkIds, pageAnswer, pageQuery } from './paging.ts';
import { SESSION_SORTS } from '../broker/session.service.ts';

export function sessionRoutes(t: RouteTable, { broker, overview }: ApiDeps): void {
  t.add({
    method: 'get', path: '/sessions', tag: 'sessions', role: 'helpdesk',
    summary: 'Live sessions, filtered. With `limit` one page of the helpdesk table: `{items, total, nextCursor?}` (search `q` over user, pool, state, desktop, client address, device; `sort`, `order`, `offset` or `cursor`); without it every match as `{sessions}`',
    query: z.strictObject({ user: username.optional(), pool: poolName.optional(), state: sessionState.optional(), ...pageQuery(SESSION_SORTS) }),
    response: z.object({ sessions: z.array(sessionView) }),
    handler: async ({ query }) => {
      const { q, sort, order, limit, offset, cursor, ...filter } = query;
      if (limit === undefined) return { sessions: await broker.sessions.listLive(filter) };
      const start = cursor ?? offset ?? 0;
      return pageAnswer(await broker.sessions.pageLive({ ...filter, ...(q ? { q } : {}), ...(sort ? { sort } : {}), order, offset: start, limit }), start, limit);
    },
  });
  t.add({
    method: 'post', path: '/sessions/bulk', tag: 'sessions', role: 'helpdesk', auditAction: 'session.bulk',
    summary: 'Log off up to 500 sessions: each is logged off (and audited) as the single logoff would be; `results` has every id\'s outcome',
    body: z.strictObject({ action: z.literal('logoff'), ids: bulkIds }),
    handler: async ({ body, actor }) => ({ results: await broker.sessions.bulkLogoff(actor, body.ids) }),
  });
  t.add({
    method: 'get', path: '/sessions/:id', tag: 'sessions', role: 'helpdesk', params: idParams, errors: ['not_found'],
    summary: "One session (live or recently ended), with its logon timeline, its desktop (name, host) and pool, the open tunnel's figures (bytes, bandwidth, round trip, last input, client address and browser) and idle time",
    response: z.object({
      session: sessionView,
      desktop: z.object({ id: z.string(), name: z.string(), host: z.string(), provider: z.string(), state: z.string() }).nullable(),
      pool: z.object({ name: z.string(), displayName: z.string() }).nullable(),
      stats: z.object({ bytesToClient: z.number(), bytesFromClient: z.number(), bandwidthBps: z.number(), rttMs: z.number().nullable(), lastInputAt: z.number().nullable(), clientAddress: z.string(), userAgent: z.string(), connectedAt: z.number(), updatedAt: z.number() }).nullable(),
      idleSeconds: z.number().nullable(),
    }),
    handler: async ({ params, actor }) => overview.sessionDetail(actor, params.id),
  });
  t.add({
    method: 'post', path: '/sessions/:id/disconnect', tag: 'sessions', role: 'helpdesk', params: idParams, errors: ['not_found', 'conflict'],
    summary: "Close the user's viewer connection: the session and its desktop keep running (until the pool's logoff-after-disconnect timeout), the user can reconnect",
    response: z.object({ session: sessionView }),
    handler: async ({ params, actor }) => ({ session: await overview.disconnect(actor, params.id) }),
  });
  t.add({
    method: 'post', path: '/sessions/:id/logoff', tag: 'sessions', summary: "Log a user's session off", role: 'helpdesk', params: idParams, errors: ['not_found'],
    response: z.object({ session: sessionView }),
    handler: async ({ params, actor }) => ({ session: await broker.sessions.logoff(actor, params.id, 'helpdesk logoff') }),
  });
  t.add({
    method: 'post', path: '/sessions/:id/message', tag: 'sessions',
    summary: "Send the session's user a message: shown over their viewer and, best effort, inside the guest (`guest` says whether its agent showed it)",
    role: 'helpdesk', params: idParams, body: sessionMessageBody, errors: ['not_found', 'conflict'],
    response: z.object({ message: z.object({ id: z.number(), viewer: z.boolean(), guest: z.boolean() }) }),
    handler: async ({ params, body, actor }) => ({ message: await broker.sessions.message(actor, params.id, body) }),
  });
}
