// The viewer's message stream (GET /me/sessions/{id}/messages): server-sent events of the
// helpdesk messages queued for the session in Redis. Redis, not this replica's memory, holds
// them, so a message sent through any replica reaches a viewer streaming from any other, and a
// viewer that connects later (or reconnects: Last-Event-ID) still gets what it missed. The
// session is read by the replica's one shared loop (event-hub.ts): once a second for all the
// streams open on it on this replica; a comment line every 15 s keeps proxies from closing it;
// it ends after 5 min (EventSource reconnects), after `limit` messages, when the session ends,
// or when the broker stops.
import type { Request, Response } from 'express';
import type { Session, SessionMessage } from '../broker/index.ts';
import { sseStream, type EventHub } from './event-hub.ts';

const INTERVAL_MS = 1000;

export async function streamSessionMessages(
  req: Request,
  res: Response,
  o: {
    hub: EventHub;
    session: string;
    after?: number | undefined;
    limit?: number | undefined;
    /** Reads the session and its kept messages (the caller checked the user may). */
    read: (after: number) => Promise<{ session: Session; messages: SessionMessage[] }>;
  },
): Promise<void> {
  const lastEventId = Number(req.headers['last-event-id']);
  let after = Number.isInteger(lastEventId) && lastEventId >= 0 && lastEventId <= 1e9 ? lastEventId : (o.after ?? 0);
  await sseStream(req, res, (s) => {
    let sent = 0;
    // Every stream of the session shares one read of all its kept messages; each sends its own tail.
    return o.hub.subscribe(`messages:${o.session}`, INTERVAL_MS, () => o.read(0), (r) => {
      if (!s.alive()) return;
      // Redis away or the session expired: the client reconnects and is told which.
      if (!r.ok) return s.stop();
      for (const m of r.value.messages) {
        if (m.id <= after) continue;
        s.send('message', m, m.id);
        after = m.id;
        if (o.limit && ++sent >= o.limit) return s.stop();
      }
      if (r.value.session.state === 'ended') {
        s.send('ended', { at: Date.now(), reason: r.value.session.endReason });
        s.stop();
      }
    });
  });
}
