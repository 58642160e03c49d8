// Helpdesk shadowing as the user lives it (server/broker/shadow.service.ts): the helpdesk
// starts a shadow, polls its state (which keeps it alive), asks for control, ends it; the
// user's viewer follows it as server-sent events and answers consent and control requests.
// The tickets themselves: POST /sessions/{id}/shadow (tunnel.router.ts).
import { z } from 'zod';
import type { Request, Response } from 'express';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { idParams } from './schemas.ts';
import type { MyShadowView } from '../broker/shadow.service.ts';

const shadowView = z.object({
  session: z.string(), user: z.string(), desktop: z.string(), policy: z.enum(['notify', 'consent']),
  consent: z.enum(['pending', 'allowed', 'denied', 'timeout']), control: z.enum(['none', 'requested', 'granted', 'denied', 'revoked']),
  by: z.string(), startedAt: z.number(), answerBy: z.number(),
});
const myShadowView = z.object({
  shadowed: z.boolean(), by: z.string(), consent: z.enum(['pending', 'allowed', 'denied', 'timeout']).nullable(),
  control: z.enum(['none', 'requested', 'granted', 'denied', 'revoked']).nullable(), answerBy: z.number(), ended: z.boolean(),
});
const answerBody = z.strictObject({ allow: z.boolean() });
const eventsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).optional() });

const INTERVAL_MS = 1000;
const HEARTBEAT_MS = 15_000;
const MAX_MS = 300_000;

/** Server-sent `shadow` events whenever the state changes (checked every second), for 5 min at most. */
async function streamShadow(req: Request, res: Response, read: () => Promise<MyShadowView>, limit?: number): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  res.write('retry: 2000\n\n');
  const started = Date.now();
  let last = '';
  let lastWrite = Date.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    let closed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      if (!res.writableEnded) res.end();
      resolve();
    };
    res.on('close', stop);
    res.on('error', stop);
    const server = (req.socket as typeof req.socket & { server?: { listening: boolean } }).server;
    const tick = async () => {
      if (closed) return;
      if (server && !server.listening) return stop();
      try {
        const view = await read();
        if (closed) return;
        const json = JSON.stringify(view);
        if (view.ended) {
          res.write(`event: ended\ndata: ${json}\n\n`);
          return stop();
        }
        if (json !== last) {
          res.write(`event: shadow\ndata: ${json}\n\n`);
          last = json;
          lastWrite = Date.now();
          sent++;
        } else if (Date.now() - lastWrite >= HEARTBEAT_MS) {
          res.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
      } catch {
        return stop(); // the session ended or Redis is away: the browser reconnects and is told which
      }
      if ((limit && sent >= limit) || Date.now() - started > MAX_MS) return stop();
      timer = setTimeout(() => void tick(), INTERVAL_MS);
    };
    void tick();
  });
}

export function shadowRoutes(t: RouteTable, { shadow }: ApiDeps): void {
  t.add({
    method: 'post', path: '/sessions/:id/shadow/start', tag: 'sessions', role: 'helpdesk', params: idParams, errors: ['not_found', 'conflict'],
    summary: "Start watching a user's live session: the user sees a notice at once (pool shadow: notify) or is asked to allow it (consent: 30 s to answer); then ask POST /sessions/{id}/shadow for tickets",
    response: z.object({ shadow: shadowView }),
    handler: async ({ params, actor }) => ({ shadow: await shadow.start(actor, params.id) }),
  });
  t.add({
    method: 'get', path: '/sessions/:id/shadow', tag: 'sessions', role: 'helpdesk', params: idParams, errors: ['not_found'],
    summary: 'My shadow of this session: consent (pending, allowed, denied, timeout) and control (none, requested, granted, denied, revoked); polling it keeps the shadow alive (it ends 45 s after the last poll)',
    response: z.object({ shadow: shadowView }),
    handler: async ({ params, actor, res }) => {
      res.set('Cache-Control', 'no-store');
      return { shadow: await shadow.status(actor, params.id) };
    },
  });
  t.add({
    method: 'post', path: '/sessions/:id/shadow/control', tag: 'sessions', role: 'helpdesk', params: idParams, errors: ['not_found', 'conflict'],
    summary: "Ask the user for keyboard and mouse: they accept or refuse in their viewer (30 s); once granted, new shadow tickets accept input until the user takes control back",
    response: z.object({ shadow: shadowView }),
    handler: async ({ params, actor }) => ({ shadow: await shadow.requestControl(actor, params.id) }),
  });
  t.add({
    method: 'delete', path: '/sessions/:id/shadow', tag: 'sessions', role: 'helpdesk', params: idParams, status: 204, errors: ['not_found'],
    summary: 'Stop watching (the user\'s notice goes away; audited)',
    handler: async ({ params, actor }) => {
      await shadow.end(actor, params.id);
      return undefined;
    },
  });
  t.add({
    method: 'get', path: '/me/sessions/:id/shadow', tag: 'me', role: 'user', params: idParams, errors: ['not_found'],
    summary: 'Whether the helpdesk is watching my session, and any question for me (consent, control)',
    response: z.object({ shadow: myShadowView }),
    handler: async ({ params, actor, res }) => {
      res.set('Cache-Control', 'no-store');
      return { shadow: await shadow.mine(actor, params.id) };
    },
  });
  t.add({
    method: 'get', path: '/me/sessions/:id/shadow/events', tag: 'me', role: 'user', params: idParams, query: eventsQuery, errors: ['not_found'],
    summary: 'The same as server-sent events: `shadow` at once and at every change (checked every second), `ended` when the session ends; ends after 5 min (EventSource reconnects) or `limit` events',
    handler: async ({ req, res, params, query, actor }) => {
      await shadow.mine(actor, params.id); // a foreign or unknown session is a plain 404
      await streamShadow(req, res, () => shadow.mine(actor, params.id), query.limit);
      return undefined;
    },
  });
  t.add({
    method: 'post', path: '/me/sessions/:id/shadow/consent', tag: 'me', role: 'user', params: idParams, body: answerBody, errors: ['not_found', 'conflict'],
    summary: 'Allow or deny the helpdesk watching my session (asked when the pool says shadow: consent)',
    response: z.object({ shadow: myShadowView }),
    handler: async ({ params, body, actor }) => ({ shadow: await shadow.answerConsent(actor, params.id, body.allow) }),
  });
  t.add({
    method: 'post', path: '/me/sessions/:id/shadow/control', tag: 'me', role: 'user', params: idParams, body: answerBody, errors: ['not_found', 'conflict'],
    summary: "Hand keyboard and mouse to the helpdesk that asked (allow: true), refuse (false), or take control back (false while granted)",
    response: z.object({ shadow: myShadowView }),
    handler: async ({ params, body, actor }) => ({ shadow: await shadow.answerControl(actor, params.id, body.allow) }),
  });
}
