// npm run bench:assign [-- --clients 200 --seconds 10 --rate 2000 --scaling true --replica-cap 0.4 --service true --floor true --sweep true --p99-bound 20]
// npm run bench:assign -- --against <other checkout> [--rate 700 --seconds 5 --rounds 6]
// N concurrent clients request a desktop and log off again (one "assignment" = that cycle: a
// real assignment each time, not a hand-back of the user's live session).
//
// Headline: the HTTP API of a REAL broker process (test/support/broker-process.ts: the
// production runtime with the test double as provider; desktops are records seeded in Redis),
// logged-in users with their session cookie + CSRF token, driven by a load client in a SEPARATE
// process (this file forked with --client: one keep-alive socket per client and a minimal
// HTTP/1.1 codec, so its CPU cost is small and is not the broker's). Login and password hashing
// are outside the timed loops. Measured closed loop (every client as fast as it can: the
// ceiling) and open loop at --rate assignments/s spread over the clients (latency from the
// scheduled start, so a stalled broker cannot hide its queueing), with the broker's CPU time
// per assignment (from /proc, robust to a noisy machine), and Redis's and the load client's
// beside it (they share the same cores).
// Scaling (--scaling): one replica pinned to CPU 0 vs two replicas on one Redis pinned to CPU 0
// and CPU 1 (closed loop); the load client and Redis share the same 2 cores, which the output says.
// On 2 cores that ratio is bounded by the machine (brokers, Redis and client need more than the
// two cores hold), so it is measured a second time with each replica, still pinned, capped at
// --replica-cap of its core (a cgroup CPU quota), leaving room for Redis and the client: what is
// left between that ratio and 2 is what the replicas cost each other (Redis, shared keys). Beside
// the uncapped ratio, `coresAllow`: the rate these cores allow at all at the single replica's
// CPU per assignment (broker + Redis + client), and so the highest ratio the machine can show.
// Secondary: the assignment service in-process (no HTTP), and two floors (--floor) under the same
// client and rates: node's own (a bare node:http server with fixed answers) and the broker's
// services behind a bare node:http handler (no HTTP layers). With --sweep, each of the headline and
// the floors also gets the highest offered rate it serves with p99 within --p99-bound (20 ms):
// the latency target read on the machine in hand. Prints one JSON line.
//
// --against <tree> (another checkout of this project, with its node_modules): compares two trees
// instead, and runs nothing else. This tree's broker (A) and that tree's (B), each with the node
// flags of its own tree, run at the same time on one Redis, each driven by its own load client at
// --rate, for --rounds rounds of --seconds: both see the same machine from moment to moment, so
// the ratio of their CPU per assignment (B/A, per round) holds on a machine whose speed wanders
// by a third within the hour, where runs one after the other do not (docs/benchmarks.md). Which
// broker starts first alternates every round.
import { cpus, totalmem, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { fork, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join, resolve as resolvePath } from 'node:path';
import net from 'node:net';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '2000' },
    scaling: { type: 'string', default: 'true' },
    service: { type: 'string', default: 'true' },
    floor: { type: 'string', default: 'true' },
    sweep: { type: 'string', default: 'true' },
    'p99-bound': { type: 'string', default: '20' },
    against: { type: 'string' },
    'replica-cap': { type: 'string', default: '0.4' },
    rounds: { type: 'string', default: '6' },
    client: { type: 'boolean', default: false },
  },
});
const RATE = Math.min(Math.max(Number(values.rate), 1), 50_000);
const CLIENTS = Math.min(Math.max(Number(values.clients), 1), 2000);
const SECONDS = Math.min(Math.max(Number(values.seconds), 1), 60);
const WARMUP_SECONDS = 2;
/** The latency bound of the sweep (--sweep): the highest offered rate whose p99 stays within it. */
const P99_BOUND_MS = Math.min(Math.max(Number(values['p99-bound']), 1), 10_000);
const SWEEP_SECONDS = Math.min(SECONDS, 4);
const AGAINST = values.against === undefined ? undefined : resolvePath(values.against);
if (AGAINST && !values.client && (!existsSync(join(AGAINST, 'test/support/broker-process.ts')) || !existsSync(join(AGAINST, 'node_modules')))) {
  process.stderr.write(`--against ${values.against}: not a checkout of this project with its node_modules\n`);
  process.exit(2);
}
/** --replica-cap: the share of a core each replica may use in the capped scaling run. */
const REPLICA_CAP = Math.min(Math.max(Number(values['replica-cap']), 0.05), 1);
const ROUNDS = Math.min(Math.max(Number(values.rounds), 1), 50);

interface PhaseResult {
  assignmentsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  assignments: number;
  seconds: number;
  errorStatuses?: Record<string, number>;
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]! * 100) / 100 : 0;
}

/**
 * Runs `cycle` from CLIENTS concurrent clients for `seconds` (bounded by the deadline). Closed
 * loop without `rate`; open loop with it: each client's cycles are scheduled `CLIENTS/rate` s
 * apart and latency counts from the scheduled start. cycle() returns the request's latency.
 */
async function run(seconds: number, cycle: (client: number, scheduledAt: number) => Promise<number>, rate?: number): Promise<PhaseResult> {
  const lat: number[] = [];
  let errors = 0;
  const errorStatuses: Record<string, number> = {};
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const interval = rate ? (CLIENTS * 1000) / rate : 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      let next = t0 + (interval * i) / CLIENTS;
      while (performance.now() < deadline) {
        if (interval) {
          if (next >= deadline) break;
          // Never before its time: a timer can fire up to a millisecond early (libuv's clock is
          // coarse), which made latencies from the scheduled start come out negative.
          for (let wait = next - performance.now(); wait > 0; wait = next - performance.now()) await new Promise((r) => setTimeout(r, Math.ceil(wait)));
        }
        const scheduled = interval ? next : performance.now();
        next += interval;
        try {
          lat.push(await cycle(i, scheduled));
        } catch (err) {
          errors++;
          const k = (err as Error).message.slice(0, 60);
          errorStatuses[k] = (errorStatuses[k] ?? 0) + 1;
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return {
    assignmentsPerSec: Math.round(lat.length / secs), p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), maxMs: Math.round(lat.at(-1) ?? 0),
    errors, assignments: lat.length, seconds: Math.round(secs * 10) / 10, ...(errors ? { errorStatuses } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The load client (forked): one keep-alive TCP connection per client, requests written by hand,
// answers parsed just enough (status, Content-Length or chunked body).

interface Reply {
  status: number;
  body: string;
}

class Conn {
  private sock: net.Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private readonly head: string;

  constructor(private readonly host: string, private readonly port: number, cookie: string, csrf: string) {
    this.head = `Host: ${host}:${port}\r\nCookie: ${cookie}\r\nX-CSRF-Token: ${csrf}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`;
  }

  /**
   * The keep-alive socket, opened again when the server has closed it (its keep-alive timeout
   * ends idle sockets while other phases run), as a browser's connection pool would.
   */
  private socket(): net.Socket {
    if (this.sock && !this.sock.destroyed) return this.sock;
    const sock = net.connect({ host: this.host, port: this.port, noDelay: true });
    this.buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.parse();
    });
    const fail = (e: Error) => this.settle((w) => w.reject(e));
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed')));
    return (this.sock = sock);
  }

  private settle(then: (w: NonNullable<Conn['waiting']>) => void): void {
    const w = this.waiting;
    this.waiting = null;
    if (!w) return;
    clearTimeout(w.timer);
    then(w);
  }

  post(path: string): Promise<Reply> {
    if (this.waiting) return Promise.reject(new Error('one request at a time'));
    const sock = this.socket();
    return new Promise((resolve, reject) => {
      // A request never waits forever: a lost answer is an error, and the phase's deadline holds.
      const timer = setTimeout(() => {
        this.settle((w) => w.reject(new Error('no answer in 30 s')));
        sock.destroy();
      }, 30_000);
      this.waiting = { resolve, reject, timer };
      sock.write(`POST /api/v1${path} HTTP/1.1\r\n${this.head}`);
    });
  }

  private parse(): void {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0 || !this.waiting) return;
    const head = this.buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    const start = end + 4;
    let body: string;
    let rest: Buffer;
    const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (cl) {
      const n = Number(cl[1]);
      if (this.buf.length < start + n) return;
      body = this.buf.toString('utf8', start, start + n);
      rest = this.buf.subarray(start + n);
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const parts: string[] = [];
      let at = start;
      for (;;) {
        const eol = this.buf.indexOf('\r\n', at);
        if (eol < 0) return;
        const size = parseInt(this.buf.toString('latin1', at, eol), 16);
        if (this.buf.length < eol + 2 + size + 2) return;
        if (size === 0) {
          at = eol + 4;
          break;
        }
        parts.push(this.buf.toString('utf8', eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
      body = parts.join('');
      rest = this.buf.subarray(at);
    } else {
      body = '';
      rest = this.buf.subarray(start);
    }
    this.buf = rest;
    this.settle((w) => w.resolve({ status, body }));
  }

  close(): void {
    this.sock?.destroy();
  }
}

type ToClient =
  | { type: 'init'; urls: string[]; users: string[]; password: string }
  | { type: 'run'; seconds: number; rate?: number; targets?: number };
type FromClient = { type: 'ready' } | { type: 'result'; result: PhaseResult; cpuMs: number } | { type: 'failed'; error: string };

async function clientMain(): Promise<void> {
  let conns: Conn[] = [];
  let urls: string[] = [];
  const send = (m: FromClient) => process.send!(m);
  process.on('message', (m: ToClient) => {
    void (async () => {
      try {
        if (m.type === 'init') {
          urls = m.urls;
          conns = [];
          // Logins through the ordinary client (cookie + CSRF token), 50 at a time, on every replica's URL in turn.
          const logins: { cookie: string; csrf: string }[] = new Array(m.users.length);
          for (let i = 0; i < m.users.length; i += 50) {
            await Promise.all(m.users.slice(i, i + 50).map(async (u, j) => {
              const res = await fetch(`${urls[0]}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: u, password: m.password }) });
              const body = (await res.json()) as { csrfToken?: string };
              const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]!).find((c) => c.startsWith('vdi.sid='));
              if (res.status !== 200 || !cookie || !body.csrfToken) throw new Error(`login ${u}: ${res.status}`);
              logins[i + j] = { cookie, csrf: body.csrfToken };
            }));
          }
          for (const [i, l] of logins.entries()) {
            const u = new URL(urls[i % urls.length]!);
            conns.push(new Conn(u.hostname, Number(u.port), l.cookie, l.csrf));
          }
          send({ type: 'ready' });
        } else if (m.type === 'run') {
          const cpu0 = process.cpuUsage();
          const result = await run(m.seconds, async (i, t) => {
            const c = conns[i]!;
            const r = await c.post('/me/pools/bench/request');
            const ms = performance.now() - t;
            if (r.status !== 200) throw new Error(`request ${r.status} ${r.body.slice(0, 40)}`);
            const id = /"session":\{"id":"([^"]+)"/.exec(r.body)?.[1];
            if (!id) throw new Error('request: no session id');
            const off = await c.post(`/me/sessions/${id}/logoff`);
            if (off.status !== 200) throw new Error(`logoff ${off.status} ${off.body.slice(0, 60)}`);
            return ms;
          }, m.rate);
          const cpu = process.cpuUsage(cpu0);
          send({ type: 'result', result, cpuMs: Math.round((cpu.user + cpu.system) / 1000) });
        }
      } catch (err) {
        send({ type: 'failed', error: String((err as Error).stack ?? err) });
      }
    })();
  });
  process.on('disconnect', () => {
    for (const c of conns) c.close();
    process.exit(0);
  });
  send({ type: 'ready' });
}

// ---------------------------------------------------------------------------------------------

/** CPU time (user + system, ms) a process used so far, from /proc (clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * Caps a process at `cores` of a core (a cgroup of its own: v1's cpu controller, or v2's cpu.max),
 * in 100 ms periods. Returns the function that lifts the cap, or why it could not be set.
 */
function capCpu(pid: number, cores: number): (() => void) | string {
  const v1 = '/sys/fs/cgroup/cpu';
  const root = existsSync(join(v1, 'cgroup.procs')) ? v1 : '/sys/fs/cgroup';
  const dir = join(root, `vdi-bench-${process.pid}-${pid}`);
  // The kernel's default period. The quota covers all of the process's threads (GC helpers too).
  const PERIOD = 100_000;
  const quota = Math.round(cores * PERIOD);
  try {
    mkdirSync(dir);
    if (root === v1) {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
    } else writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD}`);
    writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  } catch (err) {
    try {
      rmdirSync(dir);
    } catch {
      // never made
    }
    return `no CPU quota could be set here (${(err as Error).message.slice(0, 120)})`;
  }
  return () => {
    try {
      writeFileSync(join(root, 'cgroup.procs'), String(pid));
    } catch {
      // the process has ended: its cgroup is empty already
    }
    try {
      rmdirSync(dir);
    } catch {
      // left for the operator: named after this bench's pid
    }
  };
}

function pin(pid: number, cpu: number | string): void {
  execFileSync('taskset', ['-a', '-c', '-p', String(cpu), String(pid)], { stdio: 'ignore' });
}

class LoadClient {
  private readonly child: ChildProcess;
  private next: ((m: FromClient) => void) | null = null;
  private exited: string | undefined;
  private readonly ready: Promise<FromClient>;

  constructor() {
    this.child = fork(fileURLToPath(import.meta.url), ['--client', '--clients', String(CLIENTS)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromClient) => {
      const n = this.next;
      this.next = null;
      n?.(m);
    });
    // One listener for the child's whole life (not one per reply): the pending reply fails.
    this.child.once('exit', (code) => {
      this.exited = `load client exited with ${code}`;
      const n = this.next;
      this.next = null;
      n?.({ type: 'failed', error: this.exited });
    });
    this.ready = this.reply();
  }

  get pid(): number {
    return this.child.pid!;
  }

  private reply(): Promise<FromClient> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((resolve, reject) => {
      this.next = (m) => (m.type === 'failed' ? reject(new Error(`load client: ${m.error}`)) : resolve(m));
    });
  }

  async init(urls: string[], users: string[], password: string): Promise<void> {
    await this.ready;
    const r = this.reply();
    this.child.send({ type: 'init', urls, users, password } satisfies ToClient);
    await r;
  }

  async run(seconds: number, rate?: number): Promise<{ result: PhaseResult; cpuMs: number }> {
    const r = this.reply();
    this.child.send({ type: 'run', seconds, ...(rate ? { rate } : {}) } satisfies ToClient);
    const m = await r;
    if (m.type !== 'result') throw new Error('load client: unexpected answer');
    return m;
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const { startTestBroker, PASSWORD } = await import('../test/support/harness.ts');
  const { SYSTEM_ACTOR } = await import('../server/broker/index.ts');
  const { freePort } = await import('../test/support/redis.ts');
  const { ROOT, startBrokerProcess: startProcess } = await import('../test/support/process.ts');
  /**
   * A broker process (test/support/broker-process.ts) of this tree, or of another one with that
   * tree's node flags (--against); waits up to 3 min (a busy box compiles slowly).
   */
  const startBrokerProcess = async (script: string, env: Record<string, string>, tree = ROOT) =>
    startProcess(script, env, [], { root: tree, ...(tree === ROOT ? {} : { nodeFlags: await treeNodeFlags(tree) }), startTimeoutMs: 180_000, outputTailChars: 4000 });
  type Actor = import('../server/broker/index.ts').Actor;

  const load0 = loadavg()[0]!;
  const tb = await startTestBroker({ name: 'bench-assign' });
  const brokers: Awaited<ReturnType<typeof startBrokerProcess>>[] = [];
  const clients: LoadClient[] = [];
  try {
    const users = Array.from({ length: CLIENTS }, (_, i) => `bench${i}`);
    // --against: the other tree's broker has users of its own (a user's second request would be handed back their live session).
    const usersB = AGAINST ? Array.from({ length: CLIENTS }, (_, i) => `benchb${i}`) : [];
    for (const u of [...users, ...usersB]) await tb.addUser(u);
    await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'bench', members: [...users, ...usersB] });
    const desktops = users.length + usersB.length + 10;
    // Persistent floating pool: a logged-off desktop is ready again at once, so the loop measures
    // assignment and release, not provisioning. The desktops are records seeded in Redis.
    await tb.app.broker.pools.create(tb.pool({ name: 'bench', persistence: 'persistent', size: { min: 0, max: desktops, spare: 0 }, naming: 'bench-{n:05}', entitlements: { users: [], groups: ['bench'] } }), SYSTEM_ACTOR);
    for (let i = 0; i < desktops; i++) {
      const r = await tb.app.store.desktops.provisionSpare('bench', Date.now());
      if ('id' in r) await tb.app.store.desktops.transition(r.id, 'settled');
    }

    let service: Record<string, PhaseResult> | undefined;
    if (values.service === 'true') {
      const actors: Actor[] = users.map((id) => ({ principal: { kind: 'user', id, role: 'user', groups: ['bench'] }, address: '127.0.0.1' }));
      const serviceCycle = async (i: number, t: number) => {
        const r = await tb.app.broker.assignment.request(actors[i]!, 'bench');
        const ms = performance.now() - t;
        await tb.app.broker.sessions.logoff(actors[i]!, r.session.id);
        return ms;
      };
      await run(1, serviceCycle);
      service = { closedLoop: await run(SECONDS, serviceCycle), openLoop: await run(SECONDS, serviceCycle, RATE) };
      process.stderr.write(`service: ${JSON.stringify(service)}\n`);
    }

    const startReplica = async (script = 'test/support/broker-process.ts', tree = ROOT) => {
      const port = await freePort();
      const b = await startBrokerProcess(script, {
        VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: tb.config.redis.url, VDI_REDIS_KEY_PREFIX: tb.prefix,
        VDI_JOBS_ENABLED: 'false', VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1',
      }, tree);
      brokers.push(b);
      return b;
    };
    // Redis's own CPU beside the broker's, when it runs on this machine (its pid from INFO): the
    // broker, Redis and the load client share the same cores, so the output says what each took.
    const redisPid = await (async () => {
      const m = /process_id:(\d+)/.exec(await tb.app.store.redis.info('server'));
      const pid = m ? Number(m[1]) : 0;
      try {
        return pid && ['127.0.0.1', 'localhost', '::1'].includes(new URL(tb.config.redis.url).hostname) ? (cpuMsOf(pid), pid) : 0;
      } catch {
        return 0;
      }
    })();
    const perAssignment = (ms: number, r: PhaseResult) => Math.round((ms / Math.max(r.assignments, 1)) * 1000) / 1000;
    /** One measured phase: the brokers' CPU per assignment beside Redis's and the client's. */
    const phase = async (label: string, lc: LoadClient, pids: number[], rate?: number, seconds = SECONDS) => {
      await lc.run(WARMUP_SECONDS, rate);
      const cpu0 = pids.map(cpuMsOf);
      const redis0 = redisPid ? cpuMsOf(redisPid) : 0;
      const { result, cpuMs } = await lc.run(seconds, rate);
      const brokerCpuMs = pids.reduce((a, p, i) => a + cpuMsOf(p) - cpu0[i]!, 0);
      const redisCpuMs = redisPid ? cpuMsOf(redisPid) - redis0 : undefined;
      const out = {
        ...result, brokerCpuMsPerAssignment: perAssignment(brokerCpuMs, result), brokerCpuPercent: Math.round(brokerCpuMs / (result.seconds * 10)), clientCpuPercent: Math.round(cpuMs / (result.seconds * 10)),
        ...(redisCpuMs !== undefined ? { redisCpuMsPerAssignment: perAssignment(redisCpuMs, result), redisCpuPercent: Math.round(redisCpuMs / (result.seconds * 10)) } : {}),
        clientCpuMsPerAssignment: perAssignment(cpuMs, result),
      };
      process.stderr.write(`${label}: ${JSON.stringify(out)}\n`);
      return out;
    };

    /**
     * The highest offered rate (open loop) that is served in full with p99 within --p99-bound:
     * the target rate first, then bisection below it to within 5 % of it. Each probe is a short
     * open-loop phase; on a noisy machine read it as an estimate, with its probes beside it.
     */
    const sweep = async (label: string, lc: LoadClient, pids: number[]) => {
      const probes: { offered: number; served: number; p99Ms: number; brokerCpuMsPerAssignment: number }[] = [];
      const within = async (rate: number) => {
        const r = await phase(`${label} sweep ${rate}/s`, lc, pids, rate, SWEEP_SECONDS);
        probes.push({ offered: rate, served: r.assignmentsPerSec, p99Ms: r.p99Ms, brokerCpuMsPerAssignment: r.brokerCpuMsPerAssignment });
        return r.errors === 0 && r.assignmentsPerSec >= rate * 0.97 && r.p99Ms <= P99_BOUND_MS;
      };
      let lo = 0;
      let hi = RATE;
      if (await within(RATE)) lo = RATE;
      else {
        while (hi - lo > Math.max(RATE * 0.05, 10)) {
          const mid = Math.round((lo + hi) / 2);
          if (await within(mid)) lo = mid;
          else hi = mid;
        }
      }
      return { p99BoundMs: P99_BOUND_MS, assignmentsPerSec: lo, probes };
    };

    if (AGAINST) {
      process.stdout.write(JSON.stringify({ ...(await against(AGAINST, startReplica, users, usersB, redisPid, PASSWORD)), machine: machineOf(load0) }) + '\n');
      return;
    }

    // Headline: one broker process, the load client in its own process, nothing pinned.
    const one = await startReplica();
    const lc = new LoadClient();
    clients.push(lc);
    await lc.init([one.url], users, PASSWORD);
    const onePid = one.child.pid!;
    const http = {
      closedLoop: await phase('http closed', lc, [onePid]), openLoop: await phase('http open', lc, [onePid], RATE),
      ...(values.sweep === 'true' ? { withinP99Bound: await sweep('http', lc, [onePid]) } : {}),
    };

    // Two floors on this machine, under the same client and rates: node alone (a bare node:http
    // server with fixed answers, bench/support/bare-http.ts) and the broker's own services behind
    // a bare node:http handler (bench/support/services-front.ts: the login read, the assignment
    // with its timeline and audit entry, the logoff; none of the HTTP layers). The headline minus
    // the second is what the broker's HTTP layers cost; the second minus the first, its services.
    let nodeFloor: Record<string, unknown> | undefined;
    let servicesFloor: Record<string, unknown> | undefined;
    if (values.floor === 'true') {
      const floorOf = async (label: string, start: () => Promise<Awaited<ReturnType<typeof startBrokerProcess>>>) => {
        const server = await start();
        brokers.push(server);
        const flc = new LoadClient();
        clients.push(flc);
        await flc.init([server.url], users, PASSWORD);
        const pids = [server.child.pid!];
        const out = {
          closedLoop: await phase(`${label} closed`, flc, pids), openLoop: await phase(`${label} open`, flc, pids, RATE),
          ...(values.sweep === 'true' ? { withinP99Bound: await sweep(label, flc, pids) } : {}),
        };
        flc.close();
        await server.kill('SIGTERM');
        return out;
      };
      nodeFloor = {
        ...(await floorOf('node floor', async () => startBrokerProcess('bench/support/bare-http.ts', { VDI_SERVER_PORT: String(await freePort()) }))),
        server: 'bare node:http answering the same requests with fixed JSON of the broker\'s shape (no express, no Redis): what node alone costs here; its CPU is under brokerCpu*',
      };
      servicesFloor = {
        ...(await floorOf('services floor', () => startReplica('bench/support/services-front.ts'))),
        server: 'the broker\'s services (login read, assignment with its logon timeline and audit entry, logoff; the same Redis and config) behind a bare node:http handler: no lean lane, security headers, request log, CSRF, validation or role guard; the headline minus this is what those HTTP layers cost',
      };
    }

    let scaling: Record<string, unknown> | undefined;
    if (values.scaling === 'true') {
      // One replica on CPU 0 (client on CPU 1), then two replicas on CPU 0 and CPU 1 (client and Redis float).
      pin(onePid, 0);
      pin(lc.pid, 1);
      const single = await phase('1 replica (cpu0) closed', lc, [onePid]);
      const two = await startReplica();
      pin(two.child.pid!, 1);
      pin(lc.pid, '0,1');
      const lc2 = new LoadClient();
      clients.push(lc2);
      await lc2.init([one.url, two.url], users, PASSWORD);
      const pair = await phase('2 replicas (cpu0, cpu1) closed', lc2, [onePid, two.child.pid!]);
      const ratioOf = (two: PhaseResult, one: PhaseResult) => Math.round((two.assignmentsPerSec / Math.max(one.assignmentsPerSec, 1)) * 100) / 100;
      let capped: Record<string, unknown>;
      const caps = [capCpu(onePid, REPLICA_CAP), capCpu(two.child.pid!, REPLICA_CAP)];
      try {
        const refused = caps.find((c): c is string => typeof c === 'string');
        if (refused) capped = { skipped: refused };
        else {
          // Three rounds of one then two, interleaved: a slow moment of this machine's neighbours
          // lands on one phase, so the ratio is of the medians.
          const rounds: { oneReplica: PhaseResult; twoReplicas: PhaseResult }[] = [];
          for (let r = 0; r < 3; r++) {
            rounds.push({
              oneReplica: await phase(`1 replica capped at ${REPLICA_CAP} core closed, round ${r + 1}`, lc, [onePid]),
              twoReplicas: await phase(`2 replicas capped at ${REPLICA_CAP} core each closed, round ${r + 1}`, lc2, [onePid, two.child.pid!]),
            });
          }
          const mid = (side: 'oneReplica' | 'twoReplicas') => [...rounds].sort((x, y) => x[side].assignmentsPerSec - y[side].assignmentsPerSec)[1]![side];
          capped = {
            capCores: REPLICA_CAP, oneReplica: mid('oneReplica'), twoReplicas: mid('twoReplicas'), ratio: ratioOf(mid('twoReplicas'), mid('oneReplica')),
            rounds: rounds.map((r) => ({ oneReplica: r.oneReplica.assignmentsPerSec, twoReplicas: r.twoReplicas.assignmentsPerSec, ratio: ratioOf(r.twoReplicas, r.oneReplica) })),
            setup: `the same replicas (cpu0, cpu1), each capped at ${REPLICA_CAP} of its core by a cgroup CPU quota (100 ms periods); Redis and the load client unpinned; 3 interleaved rounds, the median of each side`,
          };
        }
      } finally {
        for (const c of caps) if (typeof c !== 'string') c();
      }
      // What the cores allow at all: at the single replica's CPU per assignment (broker + Redis +
      // client, all on these cores), no number of replicas serves more than this. Only when Redis
      // runs here (its CPU is counted).
      const cpuMsPerAssignment = single.brokerCpuMsPerAssignment + (single.redisCpuMsPerAssignment ?? 0) + single.clientCpuMsPerAssignment;
      const coresAllow = single.redisCpuMsPerAssignment !== undefined && cpuMsPerAssignment > 0 ? Math.round((cpus().length * 1000) / cpuMsPerAssignment) : undefined;
      scaling = {
        oneReplica: single, twoReplicas: pair, ratio: ratioOf(pair, single),
        ...(coresAllow ? {
          coresAllow: {
            assignmentsPerSec: coresAllow,
            ratio: Math.round((coresAllow / Math.max(single.assignmentsPerSec, 1)) * 100) / 100,
            how: `${cpus().length} cores / (broker + Redis + client CPU per assignment of the single replica, ${cpuMsPerAssignment.toFixed(3)} ms): the most any number of replicas can serve on this machine, and so the highest ratio it can show`,
          },
        } : {}),
        setup: 'replicas pinned with taskset (one: cpu0, client on cpu1; two: cpu0 and cpu1, client unpinned); Redis and the load client share the same 2 cores',
        capped,
      };
    }

    const c = await tb.app.store.pools.counts('bench');
    process.stdout.write(
      JSON.stringify({
        bench: 'assign',
        clients: CLIENTS,
        seconds: SECONDS,
        openLoopRate: RATE,
        cycle: 'POST /me/pools/bench/request + POST /me/sessions/:id/logoff (cookie session + CSRF); latency = the request, from its scheduled start',
        desktops: 'records seeded in Redis (persistent pool, fake provider)',
        http,
        ...(nodeFloor ? { nodeFloor } : {}),
        ...(servicesFloor ? { servicesFloor } : {}),
        ...(scaling ? { scaling } : {}),
        ...(service ? { serviceInProcess: service } : {}),
        countsAddUp: c.ready + c.in_use === c.total,
        machine: machineOf(load0),
      }) + '\n',
    );
  } finally {
    for (const lc of clients) lc.close();
    for (const b of brokers) await b.kill('SIGTERM');
    await tb.close();
  }
  process.exit(0);
}

const machineOf = (loadAvgBefore: number) => ({ cpus: cpus().length, model: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, loadAvgBefore, loadAvgAfter: loadavg()[0] });

/** The node flags another tree starts its broker with (none before server/node-flags.ts existed). */
async function treeNodeFlags(tree: string): Promise<readonly string[]> {
  const file = join(tree, 'server/node-flags.ts');
  if (!existsSync(file)) return [];
  return ((await import(pathToFileURL(file).href)) as { BROKER_NODE_FLAGS: readonly string[] }).BROKER_NODE_FLAGS;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * --against: this tree's broker (A) and `tree`'s (B) at once on one Redis, each driven by its own
 * load client at RATE, ROUNDS rounds of SECONDS after a warm-up; per round each broker's CPU per
 * assignment (from /proc), its p50/p99 and what it served, and the ratio B/A.
 */
async function against(
  tree: string,
  startReplica: (script?: string, tree?: string) => Promise<{ child: ChildProcess; url: string }>,
  usersA: string[],
  usersB: string[],
  redisPid: number,
  password: string,
) {
  const a = await startReplica();
  const b = await startReplica('test/support/broker-process.ts', tree);
  const lcA = new LoadClient();
  const lcB = new LoadClient();
  try {
    await Promise.all([lcA.init([a.url], usersA, password), lcB.init([b.url], usersB, password)]);
    const side = [{ lc: lcA, pid: a.child.pid! }, { lc: lcB, pid: b.child.pid! }];
    /** Both load clients at once (the first to start alternates); each broker's CPU over the run. */
    const both = async (seconds: number, bFirst: boolean) => {
      const cpu0 = side.map((s) => cpuMsOf(s.pid));
      const redis0 = redisPid ? cpuMsOf(redisPid) : 0;
      const order = bFirst ? [side[1]!, side[0]!] : side;
      const runs = new Map(order.map((s) => [s, s.lc.run(seconds, RATE)]));
      const [ra, rb] = await Promise.all(side.map((s) => runs.get(s)!));
      const cpu = side.map((s, i) => cpuMsOf(s.pid) - cpu0[i]!);
      const per = (ms: number, r: PhaseResult) => ms / Math.max(r.assignments, 1);
      return {
        A: { cpuMsPerAssignment: round3(per(cpu[0]!, ra!.result)), served: ra!.result.assignmentsPerSec, p50Ms: ra!.result.p50Ms, p99Ms: ra!.result.p99Ms, errors: ra!.result.errors },
        B: { cpuMsPerAssignment: round3(per(cpu[1]!, rb!.result)), served: rb!.result.assignmentsPerSec, p50Ms: rb!.result.p50Ms, p99Ms: rb!.result.p99Ms, errors: rb!.result.errors },
        ratio: round3(per(cpu[1]!, rb!.result) / per(cpu[0]!, ra!.result)),
        ...(redisPid ? { redisCpuMsPerAssignment: round3((cpuMsOf(redisPid) - redis0) / Math.max(ra!.result.assignments + rb!.result.assignments, 1)) } : {}),
      };
    };
    await both(WARMUP_SECONDS, false);
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      const out = await both(SECONDS, r % 2 === 1);
      process.stderr.write(`against round ${r}: ${JSON.stringify(out)}\n`);
      rounds.push(out);
    }
    const ratios = rounds.map((r) => r.ratio);
    return {
      bench: 'assign', mode: 'against', a: fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, ''), b: tree, clients: CLIENTS, seconds: SECONDS, ratePerBroker: RATE,
      cycle: 'POST /me/pools/bench/request + POST /me/sessions/:id/logoff (cookie session + CSRF), each broker driven by its own load client, both at once on one Redis',
      cpuRatioBOverA: { median: round3(median(ratios)), min: Math.min(...ratios), max: Math.max(...ratios) },
      p99Ms: { A: median(rounds.map((r) => r.A.p99Ms)), B: median(rounds.map((r) => r.B.p99Ms)) },
      cpuMsPerAssignment: { A: round3(median(rounds.map((r) => r.A.cpuMsPerAssignment))), B: round3(median(rounds.map((r) => r.B.cpuMsPerAssignment))) },
      errors: rounds.reduce((n, r) => n + r.A.errors + r.B.errors, 0),
      rounds,
    };
  } finally {
    lcA.close();
    lcB.close();
  }
}

if (values.client) await clientMain();
else {
  await main();
  process.exit(0);
}
