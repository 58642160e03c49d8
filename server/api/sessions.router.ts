import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { idParams, poolName, sessionState, username } from './schemas.ts';

export function sessionRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({
    method: 'get', path: '/sessions', tag: 'sessions', summary: 'Live sessions, filtered', role: 'helpdesk',
    query: z.strictObject({ user: username.optional(), pool: poolName.optional(), state: sessionState.optional() }),
    handler: async ({ query }) => ({ sessions: await broker.sessions.listLive(query) }),
  });
  t.add({
    method: 'get', path: '/sessions/:id', tag: 'sessions', summary: 'One session (live or recently ended)', role: 'helpdesk', params: idParams, errors: ['not_found'],
    handler: async ({ params, actor }) => ({ session: await broker.sessions.get(actor, params.id) }),
  });
  t.add({
    method: 'post', path: '/sessions/:id/logoff', tag: 'sessions', summary: "Log a user's session off", role: 'helpdesk', params: idParams, errors: ['not_found'],
    handler: async ({ params, actor }) => ({ session: await broker.sessions.logoff(actor, params.id, 'helpdesk logoff') }),
  });
}
