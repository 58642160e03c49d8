// The broker's HTTP server (server/app.ts createHttpServer) hands express requests and responses
// that already carry express's prototypes, so express's per-request Object.setPrototypeOf is a
// no-op (it made V8's property caches in node's HTTP code megamorphic: a third of a request's CPU
// in bench:assign). Express must work on them as before, upgrades included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createHttpServer } from '../../server/app.ts';

test('requests and responses reach express with its prototypes already; express routing, query, JSON answers and upgrades work on them', async () => {
  const app = express();
  app.set('trust proxy', 'loopback');
  app.get('/p/:id', (req, res) => {
    res.status(201).json({ id: req.params.id, q: req.query.q, ip: req.ip, path: req.path });
  });
  const server = createHttpServer(app);
  const seen: boolean[] = [];
  // Before express's own listener: what the server made, untouched by express.
  server.prependListener('request', (req, res) => {
    seen.push(Object.getPrototypeOf(req) === app.request && Object.getPrototypeOf(res) === app.response);
  });
  let upgradeProto = false;
  server.on('upgrade', (req, socket) => {
    upgradeProto = Object.getPrototypeOf(req) === app.request;
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${base}/p/a%20b?q=${i}`, { headers: { 'X-Forwarded-For': '10.1.2.3' } });
      assert.equal(r.status, 201);
      assert.deepEqual(await r.json(), { id: 'a b', q: String(i), ip: '10.1.2.3', path: '/p/a%20b' });
    }
    assert.equal((await fetch(`${base}/none`)).status, 404);
    assert.deepEqual(seen, [true, true, true, true]);

    const sock = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    let answer = '';
    sock.on('data', (d: Buffer) => (answer += d.toString()));
    await once(sock, 'close');
    assert.match(answer, /^HTTP\/1\.1 400/);
    assert.equal(upgradeProto, true);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
