import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { idParams, poolName, sessionMessageBody, sessionState, sessionView, username } from './schemas.ts';

export function sessionRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({
    method: 'get', path: '/sessions', tag: 'sessions', summary: 'Live sessions, filtered', role: 'helpdesk',
    query: z.strictObject({ user: username.optional(), pool: poolName.optional(), state: sessionState.optional() }),
    response: z.object({ sessions: z.array(sessionView) }),
    handler: async ({ query }) => ({ sessions: await broker.sessions.listLive(query) }),
  });
  t.add({
    method: 'get', path: '/sessions/:id', tag: 'sessions', summary: 'One session (live or recently ended), with its logon timeline', role: 'helpdesk', params: idParams, errors: ['not_found'],
    response: z.object({ session: sessionView }),
    handler: async ({ params, actor }) => ({ session: await broker.sessions.get(actor, params.id) }),
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
