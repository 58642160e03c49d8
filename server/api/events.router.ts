// Live updates for the helpdesk console: a server-sent events stream (text/event-stream) of
// `snapshot` events (pools with desktop counts, live sessions), sent when something changed.
// The snapshot is read by the replica's one shared loop (event-hub.ts): once per 2 s for all
// the consoles open on this replica, not once per console; a comment line every 15 s keeps
// proxies from closing it. A stream ends by itself after 5 min (EventSource reconnects after
// `retry` ms), or after `limit` snapshots (scripts, tests), or when the broker stops. The
// snapshot is what GET /pools and GET /sessions answer, so a client can fall back to polling those.
import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { eventHubOf, sseStream } from './event-hub.ts';

const INTERVAL_MS = 2000;

export function eventRoutes(t: RouteTable, { broker }: ApiDeps): void {
  const hub = eventHubOf(broker);
  const read = async () => {
    const [pools, sessions] = await Promise.all([broker.pools.list(), broker.sessions.listLive({})]);
    return { pools, sessions, json: JSON.stringify({ pools, sessions }) };
  };
  t.add({
    method: 'get',
    path: '/events',
    tag: 'events',
    summary: 'Live updates (server-sent events): a `snapshot` event with pools and live sessions whenever they change',
    role: 'helpdesk',
    query: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).optional() }),
    handler: async ({ req, res, query }) => {
      await sseStream(req, res, (s) => {
        let last = '';
        let sent = 0;
        return hub.subscribe('snapshot', INTERVAL_MS, read, (r) => {
          if (!s.alive()) return;
          if (r.ok) {
            if (r.value.json === last) return;
            last = r.value.json;
            s.send('snapshot', { at: Date.now(), pools: r.value.pools, sessions: r.value.sessions });
            if (query.limit && ++sent >= query.limit) s.stop();
          } else {
            // Redis away: say so, keep the stream; the next tick tries again.
            last = '';
            s.send('unavailable', { at: Date.now(), message: 'The broker cannot read its store right now.' });
          }
        });
      });
      return undefined;
    },
  });
}
