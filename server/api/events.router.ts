// Live updates for the helpdesk console: a server-sent events stream (text/event-stream) of
// `snapshot` events (pools with desktop counts, live sessions), sent when something changed,
// checked every `intervalMs`; a comment line every 15 s keeps proxies from closing it.
// A stream ends by itself after `maxSeconds` (EventSource reconnects after `retry` ms), or
// after `limit` snapshots (scripts, tests), or when the broker stops. The snapshot is what GET /pools and GET /sessions
// answer, so a client can fall back to polling those.
import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';

const INTERVAL_MS = 2000;
const HEARTBEAT_MS = 15_000;
const MAX_SECONDS = 300;

export function eventRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({
    method: 'get',
    path: '/events',
    tag: 'events',
    summary: 'Live updates (server-sent events): a `snapshot` event with pools and live sessions whenever they change',
    role: 'helpdesk',
    query: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).optional() }),
    handler: async ({ req, res, query }) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      res.write(`retry: 2000\n\n`);
      let last = '';
      let sent = 0;
      let closed = false;
      let lastWrite = Date.now();
      const started = Date.now();
      await new Promise<void>((resolve) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const stop = (dropConnection = false) => {
          if (closed) return;
          closed = true;
          clearTimeout(timer);
          // (express-session wraps res.end without the callback form: wait for 'finish'.)
          if (dropConnection) res.once('finish', () => req.socket.destroy());
          if (!res.writableEnded) res.end();
          resolve();
        };
        res.on('close', () => stop());
        res.on('error', () => stop());
        // A stopping broker (server.close(): no longer listening) ends its streams, so they do
        // not hold the graceful shutdown for its whole grace period.
        const server = (req.socket as typeof req.socket & { server?: { listening: boolean } }).server;
        const tick = async () => {
          if (closed) return;
          if (server && !server.listening) return stop(true);
          try {
            const [pools, sessions] = await Promise.all([broker.pools.list(), broker.sessions.listLive({})]);
            if (closed) return;
            const data = JSON.stringify({ pools, sessions });
            if (data !== last) {
              last = data;
              res.write(`event: snapshot\ndata: ${JSON.stringify({ at: Date.now(), pools, sessions })}\n\n`);
              lastWrite = Date.now();
              sent++;
            } else if (Date.now() - lastWrite >= HEARTBEAT_MS) {
              res.write(': keep-alive\n\n');
              lastWrite = Date.now();
            }
          } catch {
            if (closed) return;
            // Redis away: say so, keep the stream; the next tick tries again.
            res.write(`event: unavailable\ndata: ${JSON.stringify({ at: Date.now(), message: 'The broker cannot read its store right now.' })}\n\n`);
            lastWrite = Date.now();
          }
          if ((query.limit && sent >= query.limit) || Date.now() - started > MAX_SECONDS * 1000) return stop();
          timer = setTimeout(() => void tick(), INTERVAL_MS);
        };
        void tick();
      });
      return undefined;
    },
  });
}
