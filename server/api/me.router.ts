import type { Request } from 'express';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { myPoolParams, idParams, firstFrameBody, messagesQuery } from './schemas.ts';
import type { Desktop, Session } from '../broker/index.ts';
import { streamSessionMessages } from './session-messages.stream.ts';
import { eventHubOf } from './event-hub.ts';

/** How long the caller's login took (ms), kept in their HTTP session at login (server/auth). */
export function loginMsOf(req: Request): number | undefined {
  const v = (req.session as unknown as { loginMs?: unknown } | undefined)?.loginMs;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** What a user sees of a desktop: no provider, host or MAC details. */
export const userDesktopView = (d: Desktop) => ({ id: d.id, name: d.name, pool: d.pool, state: d.state, session: d.session || null });
export const userSessionView = (s: Session) => ({
  id: s.id, desktop: s.desktop, pool: s.pool, state: s.state, createdAt: s.createdAt, connectedAt: s.connectedAt || null,
  disconnectedAt: s.disconnectedAt || null, endedAt: s.endedAt || null, logon: s.logon,
});

export function meRoutes(t: RouteTable, { broker, devices }: ApiDeps): void {
  t.add({
    method: 'get',
    path: '/me/pools',
    tag: 'me',
    summary: 'Pools I am entitled to, with my desktop in each',
    role: 'user',
    handler: async ({ actor }) => ({ pools: await broker.pools.entitled(actor.principal!, actor.device) }),
  });
  t.add({
    method: 'get',
    path: '/me/desktops',
    tag: 'me',
    summary: 'Desktops I hold',
    role: 'user',
    handler: async ({ actor }) => {
      const pools = await broker.pools.entitled(actor.principal!, actor.device);
      return { desktops: pools.filter((p) => p.desktop).map((p) => ({ ...p.desktop!, pool: p.name })) };
    },
  });
  t.add({
    method: 'get',
    path: '/me/sessions',
    tag: 'me',
    summary: 'My live sessions',
    role: 'user',
    handler: async ({ actor }) => ({ sessions: (await broker.sessions.listLive({ user: actor.principal!.id })).map(userSessionView) }),
  });
  t.add({
    method: 'post',
    path: '/me/pools/:pool/request',
    tag: 'me',
    summary: 'Request a desktop from a pool: my existing one, a ready one, or a new one (202 while it is prepared); a disabled pool or one in maintenance still hands back my live session',
    role: 'user',
    params: myPoolParams,
    errors: ['not_found', 'pool_location_restricted', 'pool_exhausted', 'pool_disabled', 'pool_maintenance', 'desktop_unavailable', 'mac_exhausted', 'name_exhausted', 'share_unavailable', 'conflict'],
    handler: async ({ req, res, params, actor, setStatus }) => {
      // The timeline is bookkeeping, written in one command with the session.start audit entry: a
      // failure to write them never fails the user's request (the audit failure is logged).
      const r = await broker.assignment.request(actor, params.pool, { alongside: (a, audit) => broker.sessions.recordRequest(a, { loginMs: loginMsOf(req), audit }).catch(() => undefined) });
      res.locals.session = r.session.id;
      if (actor.device) await devices.recordSession(r.session.id, actor.device);
      if (r.desktop.state !== 'in_use') setStatus(202);
      return { outcome: r.outcome, state: r.desktop.state, session: userSessionView(r.session), desktop: userDesktopView(r.desktop) };
    },
  });
  t.add({
    method: 'post',
    path: '/me/sessions/:id/logoff',
    tag: 'me',
    summary: 'Log my session off (a non-persistent desktop is refreshed or deleted)',
    role: 'user',
    params: idParams,
    errors: ['not_found'],
    handler: async ({ params, actor }) => ({ session: userSessionView(await broker.sessions.logoff(actor, params.id)) }),
  });
  t.add({
    method: 'post',
    path: '/me/sessions/:id/first-frame',
    tag: 'me',
    summary: "Report when my viewer drew a connection's first frame (ms after Launch): once per connection; the first one is the logon timeline's first_frame",
    role: 'user',
    params: idParams,
    body: firstFrameBody,
    errors: ['not_found', 'conflict'],
    handler: async ({ params, body, actor }) => broker.sessions.firstFrame(actor, params.id, body.ms),
  });
  t.add({
    method: 'get',
    path: '/me/sessions/:id/messages',
    tag: 'me',
    summary: 'Messages from the helpdesk for my session, as server-sent events (`message`, then `ended` when the session ends); resumes after Last-Event-ID or `after`',
    role: 'user',
    params: idParams,
    query: messagesQuery,
    errors: ['not_found'],
    handler: async ({ req, res, params, query, actor }) => {
      // Checked before the stream starts, so a foreign or unknown session is a plain 404.
      await broker.sessions.own(actor, params.id);
      await streamSessionMessages(req, res, { hub: eventHubOf(broker), session: params.id, after: query.after, limit: query.limit, read: (after) => broker.sessions.messagesAfter(actor, params.id, after) });
      return undefined;
    },
  });
}
