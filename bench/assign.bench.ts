// npm run bench:assign [-- --clients 200 --seconds 10 --rate 2000]
// N concurrent clients request a desktop and log off again, against a real Redis, through
// (1) the broker's assignment service and (2) the HTTP API with logged-in users (login and
// password hashing are outside the timed loop). Each is measured twice: closed loop (every
// client as fast as it can: the throughput ceiling) and open loop at --rate assignments/s
// spread over the clients (latency at that load; measured from the scheduled start, so a
// stalled broker cannot hide its queueing). Prints one JSON line.
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { startTestBroker, ApiClient } from '../test/support/harness.ts';
import { SYSTEM_ACTOR, type Actor } from '../server/broker/index.ts';
import { freePort } from '../test/support/redis.ts';
import { startBrokerProcess } from '../test/support/process.ts';

const { values } = parseArgs({ options: { clients: { type: 'string', default: '200' }, seconds: { type: 'string', default: '10' }, rate: { type: 'string', default: '2000' } } });
const RATE = Math.min(Math.max(Number(values.rate), 1), 50_000);
const CLIENTS = Math.min(Math.max(Number(values.clients), 1), 2000);
const SECONDS = Math.min(Math.max(Number(values.seconds), 1), 60);

function pct(sorted: number[], p: number): number {
  return sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]! * 100) / 100 : 0;
}

/** cycle(client, scheduledAt) runs one request + logoff and returns the request's latency in ms. */
async function run(label: string, cycle: (client: number, scheduledAt: number) => Promise<number>, rate?: number): Promise<Record<string, number>> {
  const lat: number[] = [];
  let errors = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  const interval = rate ? (CLIENTS * 1000) / rate : 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      let next = t0 + (interval * i) / CLIENTS;
      // bounded: stops at the deadline
      while (performance.now() < deadline) {
        if (interval) {
          const wait = next - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          if (next >= deadline) break;
        }
        const scheduled = interval ? next : performance.now();
        next += interval;
        try {
          lat.push(await cycle(i, scheduled));
        } catch {
          errors++;
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  process.stderr.write(`${label}: ${lat.length} assignments in ${secs.toFixed(1)} s\n`);
  return { assignmentsPerSec: Math.round(lat.length / secs), p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), errors };
}

const tb = await startTestBroker({ name: 'bench-assign' });
try {
  const users = Array.from({ length: CLIENTS }, (_, i) => `bench${i}`);
  for (const u of users) await tb.addUser(u);
  await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'bench', members: users });
  // persistent floating pool: a logged-off desktop is ready again at once, so the loop measures
  // assignment and release, not provisioning.
  await tb.app.broker.pools.create(tb.pool({ name: 'bench', persistence: 'persistent', size: { min: 0, max: CLIENTS + 10, spare: 0 }, naming: 'bench-{n:05}', entitlements: { users: [], groups: ['bench'] } }), SYSTEM_ACTOR);
  for (let i = 0; i < CLIENTS + 10; i++) {
    const r = await tb.app.store.desktops.provisionSpare('bench', Date.now());
    if ('id' in r) await tb.app.store.desktops.transition(r.id, 'settled');
  }

  const actors: Actor[] = users.map((id) => ({ principal: { kind: 'user', id, role: 'user', groups: ['bench'] }, address: '127.0.0.1' }));
  const serviceCycle = async (i: number, t: number) => {
    const r = await tb.app.broker.assignment.request(actors[i]!, 'bench');
    const ms = performance.now() - t;
    await tb.app.broker.sessions.logoff(actors[i]!, r.session.id);
    return ms;
  };
  const service = { closedLoop: await run('service closed', serviceCycle), openLoop: await run('service open', serviceCycle, RATE) };

  // The HTTP API is measured on a broker in its own process, so the load generator does not
  // share its event loop (it shares the 2 cores, as a thin-client crowd would not).
  const port = await freePort();
  const broker = await startBrokerProcess('test/support/broker-process.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: tb.config.redis.url, VDI_REDIS_KEY_PREFIX: tb.prefix,
    VDI_JOBS_ENABLED: 'false', VDI_LOGGING_LEVEL: 'warn', VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1',
  });
  const clients = users.map(() => new ApiClient(broker.url));
  for (let i = 0; i < CLIENTS; i += 50) await Promise.all(clients.slice(i, i + 50).map((c, j) => c.login(users[i + j]!)));
  const httpCycle = async (i: number, t: number) => {
    const c = clients[i]!;
    const r = await c.post('/me/pools/bench/request');
    const ms = performance.now() - t;
    if (r.status !== 200) throw new Error(String(r.status));
    await c.post(`/me/sessions/${r.body.session.id}/logoff`);
    return ms;
  };
  const http = { closedLoop: await run('http closed', httpCycle), openLoop: await run('http open', httpCycle, RATE) };
  await broker.kill('SIGTERM');

  const c = await tb.app.store.pools.counts('bench');
  process.stdout.write(
    JSON.stringify({
      bench: 'assign',
      clients: CLIENTS,
      seconds: SECONDS,
      openLoopRate: RATE,
      service,
      http,
      countsAddUp: c.ready + c.in_use === c.total,
      machine: { cpus: cpus().length, model: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    }) + '\n',
  );
} finally {
  await tb.close();
}
process.exit(0);
