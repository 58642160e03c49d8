import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { myPoolParams, idParams } from './schemas.ts';
import type { Desktop, Session } from '../broker/index.ts';

/** What a user sees of a desktop: no provider, host or MAC details. */
export const userDesktopView = (d: Desktop) => ({ id: d.id, name: d.name, pool: d.pool, state: d.state, session: d.session || null });
export const userSessionView = (s: Session) => ({
  id: s.id, desktop: s.desktop, pool: s.pool, state: s.state, createdAt: s.createdAt, connectedAt: s.connectedAt || null,
  disconnectedAt: s.disconnectedAt || null, endedAt: s.endedAt || null,
});

export function meRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({
    method: 'get',
    path: '/me/pools',
    tag: 'me',
    summary: 'Pools I am entitled to, with my desktop in each',
    role: 'user',
    handler: async ({ actor }) => ({ pools: await broker.pools.entitled(actor.principal!) }),
  });
  t.add({
    method: 'get',
    path: '/me/desktops',
    tag: 'me',
    summary: 'Desktops I hold',
    role: 'user',
    handler: async ({ actor }) => {
      const pools = await broker.pools.entitled(actor.principal!);
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
    errors: ['not_found', 'pool_exhausted', 'pool_disabled', 'pool_maintenance', 'desktop_unavailable', 'mac_exhausted', 'name_exhausted', 'share_unavailable'],
    handler: async ({ params, actor, setStatus }) => {
      const r = await broker.assignment.request(actor, params.pool);
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
}
