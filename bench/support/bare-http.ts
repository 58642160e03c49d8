// node's own HTTP floor for bench:assign: a bare node:http server (no express, no Redis, no
// broker) that answers the load client's login, desktop request and logoff with fixed JSON of
// the broker's shape, reading and parsing each JSON body as the broker does. Run the same load
// against it and the broker's CPU per assignment can be read against what node alone costs on
// this machine, at the same rate: on a virtual machine a wake-up (a socket read or write when
// requests do not come in batches) costs much more than on bare metal. Not a broker: it checks
// nothing and stores nothing. Prints `LISTENING <url>` like test/support/broker-process.ts.
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';

const port = Number(process.env.VDI_SERVER_PORT ?? 0);
// The broker's answers, in size and shape (a session and its desktop; the session on logoff).
const session = { user: 'bench0', desktop: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', pool: 'bench', state: 'starting', clientAddress: '127.0.0.1', createdAt: 0, connectedAt: 0, disconnectedAt: 0, lastActivityAt: 0, endedAt: 0, endReason: '' };
const desktop = { id: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', pool: 'bench', name: 'bench-00001', state: 'in_use', host: '', createdAt: 0, updatedAt: 0, stateSince: 0 };

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: string;
    try {
      JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      res.writeHead(400).end();
      return;
    }
    const url = req.url ?? '';
    const headers: Record<string, string | number> = { 'Content-Type': 'application/json; charset=utf-8' };
    if (url === '/api/v1/auth/login') {
      body = JSON.stringify({ user: { id: 'bench0' }, csrfToken: randomUUID() });
      headers['Set-Cookie'] = `vdi.sid=s%3A${randomUUID()}; Path=/; HttpOnly; SameSite=Lax`;
    } else if (url.endsWith('/request')) {
      const now = Date.now();
      body = JSON.stringify({ outcome: 'assigned', state: 'in_use', session: { id: randomUUID(), ...session, createdAt: now, lastActivityAt: now }, desktop: { ...desktop, updatedAt: now, stateSince: now } });
    } else if (url.endsWith('/logoff')) {
      body = JSON.stringify({ session: { id: url.split('/').at(-2), ...session, state: 'ended', endedAt: Date.now(), endReason: 'logoff' } });
    } else {
      res.writeHead(404).end();
      return;
    }
    headers['Content-Length'] = Buffer.byteLength(body);
    res.writeHead(200, headers).end(body);
  });
});

server.listen(port, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`LISTENING http://127.0.0.1:${typeof a === 'object' && a ? a.port : port}\n`);
});
// Stopped by the bench (SIGTERM): close and leave.
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
