// The viewer's message stream (GET /me/sessions/{id}/messages): server-sent events of the
// helpdesk messages queued for the session in Redis. Redis, not this replica's memory, holds
// them, so a message sent through any replica reaches a viewer streaming from any other, and a
// viewer that connects later (or reconnects: Last-Event-ID) still gets what it missed. Checked
// every second; a comment line every 15 s keeps proxies from closing it; it ends after 5 min
// (EventSource reconnects), after `limit` messages, when the session ends, or when the broker stops.
import type { Request, Response } from 'express';
import type { Session, SessionMessage } from '../broker/index.ts';

const INTERVAL_MS = 1000;
const HEARTBEAT_MS = 15_000;
const MAX_SECONDS = 300;

export async function streamSessionMessages(
  req: Request,
  res: Response,
  o: { after?: number | undefined; limit?: number | undefined; read: (after: number) => Promise<{ session: Session; messages: SessionMessage[] }> },
): Promise<void> {
  const lastEventId = Number(req.headers['last-event-id']);
  let after = Number.isInteger(lastEventId) && lastEventId >= 0 && lastEventId <= 1e9 ? lastEventId : (o.after ?? 0);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  res.write('retry: 2000\n\n');
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
      if (dropConnection) res.once('finish', () => req.socket.destroy());
      if (!res.writableEnded) res.end();
      resolve();
    };
    res.on('close', () => stop());
    res.on('error', () => stop());
    const server = (req.socket as typeof req.socket & { server?: { listening: boolean } }).server;
    const tick = async () => {
      if (closed) return;
      if (server && !server.listening) return stop(true);
      try {
        const { session, messages } = await o.read(after);
        if (closed) return;
        for (const m of messages) {
          res.write(`id: ${m.id}\nevent: message\ndata: ${JSON.stringify(m)}\n\n`);
          after = m.id;
          sent++;
          lastWrite = Date.now();
        }
        if (session.state === 'ended') {
          res.write(`event: ended\ndata: ${JSON.stringify({ at: Date.now(), reason: session.endReason })}\n\n`);
          return stop();
        }
        if (Date.now() - lastWrite >= HEARTBEAT_MS) {
          res.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
      } catch {
        if (closed) return;
        // Redis away or the session expired: the client reconnects and is told which.
        return stop();
      }
      if ((o.limit && sent >= o.limit) || Date.now() - started > MAX_SECONDS * 1000) return stop();
      timer = setTimeout(() => void tick(), INTERVAL_MS);
    };
    void tick();
  });
}
