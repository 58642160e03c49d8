// Graceful shutdown of the real broker process (server/runtime.ts): from the first SIGTERM on,
// /readyz answers 503 not_ready so a load balancer stops sending traffic, while a request that
// was already in flight is still served to its end; then the process exits 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { once } from 'node:events';
import { startTestBroker, waitFor, ApiClient, PASSWORD, type TestBroker } from '../support/harness.ts';
import { uniquePrefix, freePort, SHARED_REDIS_URL, dropPrefix } from '../support/redis.ts';
import { startBrokerProcess, type BrokerProcess } from '../support/process.ts';

const prefix = uniquePrefix('shutdown');
let admin: TestBroker | undefined;
let child: BrokerProcess | undefined;
let child2: BrokerProcess | undefined;

after(async () => {
  await child?.kill('SIGKILL');
  await child2?.kill('SIGKILL');
  await admin?.close();
  await dropPrefix(SHARED_REDIS_URL, prefix);
});

test('SIGTERM: /readyz is 503 not_ready at once while the process, still in its grace, serves the request in flight and then exits 0', async () => {
  admin = await startTestBroker({ name: 'shutdown-admin', prefix, keepKeys: true });
  await admin.addUser('alice');
  const port = await freePort();
  child = await startBrokerProcess('test/support/broker-process.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1', VDI_LOGGING_LEVEL: 'info', VDI_JOBS_ENABLED: 'false',
    VDI_SERVER_SHUTDOWN_GRACE_SECONDS: '30',
  });
  const url = child.url;
  assert.equal((await fetch(`${url}/readyz`)).status, 200);

  // A login whose body is only half sent: the server has the request (it answered
  // 100-continue) and waits for the rest; it is in flight when SIGTERM arrives.
  const body = JSON.stringify({ username: 'alice', password: PASSWORD });
  const login = request(`${url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), expect: '100-continue' } });
  const answered = once(login, 'response');
  await once(login, 'continue');
  login.write(body.slice(0, 10));

  const exited = once(child.child, 'exit');
  process.kill(child.child.pid!, 'SIGTERM');
  const r = await waitFor(async () => {
    const res = await fetch(`${url}/readyz`);
    return res.status === 503 ? res : null;
  }, 5000);
  assert.equal(r.headers.get('retry-after'), '2');
  const ready = (await r.json()) as { status: string; closing: boolean };
  assert.equal(ready.status, 'not_ready');
  assert.equal(ready.closing, true);
  // still up, in its grace: new API calls are told to go elsewhere
  assert.equal(child.child.exitCode, null, 'the process is still running');
  const late = await fetch(`${url}/api/v1/me`);
  assert.equal(late.status, 503);
  assert.equal(((await late.json()) as { error: { code: string } }).error.code, 'not_ready');
  assert.equal(child.child.exitCode, null, 'the process is still running');

  // the request in flight is served to its end
  login.end(body.slice(10));
  const [res] = (await answered) as [import('node:http').IncomingMessage];
  let text = '';
  for await (const chunk of res) text += chunk;
  assert.equal(res.statusCode, 200, text);
  assert.equal(JSON.parse(text).user.id, 'alice');

  // and with nothing left in flight the process exits at once, long before the 30 s grace
  const [code] = await Promise.race([exited, new Promise<never>((_r, rej) => setTimeout(() => rej(new Error('did not exit')), 10_000))]);
  assert.equal(code, 0, child.output());
  assert.match(child.output(), /"msg":"stopped"/);
});

test('SIGTERM with a helpdesk event stream open: the stream is ended at once and does not hold the shutdown', async () => {
  admin ??= await startTestBroker({ name: 'shutdown-admin', prefix, keepKeys: true });
  await admin.addUser('hd', 'helpdesk');
  child2 = await startBrokerProcess('test/support/broker-process.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(await freePort()), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1', VDI_LOGGING_LEVEL: 'info', VDI_JOBS_ENABLED: 'false',
    VDI_SERVER_SHUTDOWN_GRACE_SECONDS: '30', VDI_AUTH_MFA_REQUIRED_FOR_ROLES: '[]',
  });
  const hd = new ApiClient(child2.url);
  assert.equal((await hd.login('hd')).status, 200);
  const stream = await fetch(`${child2.url}/api/v1/events`, { headers: { cookie: hd.cookie } });
  assert.equal(stream.status, 200);
  const reader = stream.body!.getReader();
  let seen = '';
  while (!seen.includes('event: snapshot')) seen += new TextDecoder().decode((await reader.read()).value);

  const started = Date.now();
  const code = await child2.kill('SIGTERM');
  assert.equal(code, 0, child2.output());
  assert.ok(Date.now() - started < 8000, `stopped in ${Date.now() - started} ms (the grace is 30 s)`);
  for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) break;
});
