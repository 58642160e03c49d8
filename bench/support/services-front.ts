// bench:assign's second floor: the broker's own services behind a bare node:http handler. The
// same process as test/support/broker-process.ts (createBrokerApp, the same config, Redis and
// fake provider), but the two requests of the load's cycle skip the broker's HTTP layers (the
// lean lane, security headers, request log and metrics, CSRF check, route table, validation,
// role guard and refusal audit): the login is read (HttpAuth.leanLogin), the desktop is
// requested with its logon timeline and session.start audit entry, the session is logged off,
// and the answers have the API's shape. Everything else (the load's logins) goes to the
// broker's own listener. Read the headline against it: the headline minus this line is what the
// HTTP layers cost; this line minus node's floor is what the services and their Redis client
// cost. Not a broker to run: it checks no CSRF token. Prints `LISTENING <url>`.
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request } from 'express';
import { configOrExit, createLogger } from '../../server/runtime.ts';
import { createBrokerApp, createHttpServer } from '../../server/app.ts';
import { actorOf } from '../../server/auth/index.ts';
import { loginMsOf, userDesktopView, userSessionView } from '../../server/api/me.router.ts';
import { FakeProvider } from '../../test/support/fake-provider.ts';

const config = configOrExit(process.argv.slice(2));
// Who may connect: this front checks no CSRF token, so it listens on loopback only (the bench's
// load client on this machine); any other address is refused before anything starts.
if (!['127.0.0.1', '::1', 'localhost'].includes(config.server.host)) {
  process.stderr.write(`services-front: server.host ${config.server.host} is not a loopback address; this bench front listens on loopback only\n`);
  process.exit(2);
}
const b = await createBrokerApp({ config, logger: createLogger(config.logging.level), providers: [new FakeProvider('fake', ['host-a'])] });
const REQUEST = /^\/api\/v1\/me\/pools\/([^/?]+)\/request$/;
const LOGOFF = /^\/api\/v1\/me\/sessions\/([^/?]+)\/logoff$/;

function answer(res: ServerResponse, status: number, out: unknown): void {
  const body = JSON.stringify(out);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

async function serve(req: Request, res: ServerResponse, pool: string | undefined, session: string | undefined): Promise<void> {
  if (!(await b.auth.leanLogin(req, b.devices.config.cookieName))) return void b.listener(req, res);
  const actor = actorOf(req);
  if (pool !== undefined) {
    const r = await b.broker.assignment.request(actor, decodeURIComponent(pool), { alongside: (a, audit) => b.broker.sessions.recordRequest(a, { loginMs: loginMsOf(req), audit }).catch(() => undefined) });
    answer(res, r.desktop.state === 'in_use' ? 200 : 202, { outcome: r.outcome, state: r.desktop.state, session: userSessionView(r.session), desktop: userDesktopView(r.desktop) });
  } else {
    answer(res, 200, { session: userSessionView(await b.broker.sessions.logoff(actor, decodeURIComponent(session!))) });
  }
}

const server = createHttpServer({
  app: b.app,
  listener: (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    const request = req.method === 'POST' ? REQUEST.exec(url) : null;
    const logoff = req.method === 'POST' && !request ? LOGOFF.exec(url) : null;
    if (!request && !logoff) return b.listener(req, res);
    // The body ({}) is read and dropped, as the API reads it before answering.
    req.resume();
    req.once('end', () => {
      serve(req as Request, res, request?.[1], logoff?.[1])
        .catch((err: unknown) => answer(res, 500, { error: { code: 'internal_error', message: String(err) } }));
    });
  },
});
server.keepAliveTimeout = 65_000;
await new Promise<void>((resolve) => server.listen(config.server.port, config.server.host, () => resolve()));
process.stdout.write(`LISTENING http://${config.server.host}:${(server.address() as AddressInfo).port}\n`);
const stop = () => {
  server.closeAllConnections();
  server.close(() => void b.close().finally(() => process.exit(0)));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
