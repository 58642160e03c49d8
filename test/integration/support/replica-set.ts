// Broker replicas as real processes (test/support/broker-process.ts) on one Redis behind a real
// haproxy (WebSocket-aware, GET /readyz health checks, loopback ports, config in a temp dir).
// Each replica runs its built-in Guacamole gateway on TCP (gateway.listen: tcp, a fixed loopback
// port per replica, so a restarted replica keeps its gateway address), streaming whatever
// console the test points every desktop at (VDI_TEST_CONSOLE: a real Xvnc). Everything it
// starts is stopped by pid in close(), also when the test failed.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../../support/harness.ts';
import { freePort, SHARED_REDIS_URL } from '../../support/redis.ts';
import { startBrokerProcess, stopChild, type BrokerProcess } from '../../support/process.ts';
import type { ConsoleEndpoint } from '../../../server/providers/index.ts';

export interface ReplicaSetOptions {
  /** The test's temp dir (haproxy config, the test provider's state files). */
  dir: string;
  prefix: string;
  /** Every desktop's console (a real Xvnc). */
  console: ConsoleEndpoint;
  /** Extra --config file for every replica. */
  configFile?: string;
  /** Extra VDI_* variables for every replica. */
  env?: Record<string, string>;
  count?: number;
  /** The test provider's VMs every replica starts from (its own copy of the state file, like one hypervisor). */
  vms: Map<string, unknown>;
}

export interface ReplicaSet {
  /** haproxy's front end: what browsers and API clients use. */
  base: string;
  ports: number[];
  /** Each replica's gateway port on 127.0.0.1 (its address, as grants and session claims name it: `127.0.0.1:<port>`). */
  gatewayPorts: number[];
  replicas: (BrokerProcess | undefined)[];
  /** (Re)starts replica i with the same ports. */
  start(i: number): Promise<BrokerProcess>;
  /** Waits until haproxy's health checks see every replica UP. */
  allUp(timeoutMs?: number): Promise<Record<string, string>>;
  /** The replica whose gateway has this address (a session's tunnel claim), or -1. */
  replicaOfGateway(address: string): number;
  close(): Promise<void>;
}

export async function startReplicaSet(o: ReplicaSetOptions): Promise<ReplicaSet> {
  const count = o.count ?? 3;
  const ports: number[] = [];
  const gatewayPorts: number[] = [];
  for (let i = 0; i < count; i++) {
    ports.push(await freePort());
    gatewayPorts.push(await freePort());
  }
  const [front, statsPort] = [await freePort(), await freePort()];
  const replicas: (BrokerProcess | undefined)[] = new Array(count).fill(undefined);
  let haproxy: ChildProcess | undefined;
  let haproxyErr = '';

  const env = (i: number): Record<string, string> => ({
    VDI_TEST_PROVIDER_STATE: join(o.dir, `vms-${i}.json`),
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(ports[i]), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: o.prefix,
    VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1', VDI_LOGGING_LEVEL: 'warn',
    VDI_SERVER_TRUST_PROXY: 'loopback', VDI_SERVER_SHUTDOWN_GRACE_SECONDS: '10', VDI_SERVER_DRAIN_SECONDS: '5',
    // No external guacd: the built-in gateway, on TCP so a shadow on another replica can join it.
    VDI_GUACD_HOST: '', VDI_GATEWAY_LISTEN: 'tcp', VDI_GATEWAY_HOST: '127.0.0.1', VDI_GATEWAY_PORT: String(gatewayPorts[i]),
    VDI_TEST_CONSOLE: JSON.stringify(o.console),
    ...o.env,
  });
  const start = async (i: number) => {
    const r = await startBrokerProcess('test/support/broker-process.ts', env(i), o.configFile ? ['--config', o.configFile] : []);
    replicas[i] = r;
    return r;
  };
  const stats = `http://127.0.0.1:${statsPort}/stats`;
  /** The state haproxy's stats page gives each replica: UP, DOWN, MAINT... */
  const serverStates = async (): Promise<Record<string, string>> => {
    const csv = await (await fetch(`${stats};csv`)).text();
    const out: Record<string, string> = {};
    for (const line of csv.split('\n')) {
      const f = line.split(',');
      if (f[0] === 'brokers' && /^r\d$/.test(f[1] ?? '')) out[f[1]!] = f[17]!;
    }
    return out;
  };

  const close = async () => {
    for (const r of replicas) await r?.kill('SIGKILL');
    if (haproxy) await stopChild(haproxy);
  };
  for (let i = 0; i < count; i++) writeFileSync(join(o.dir, `vms-${i}.json`), JSON.stringify(Object.fromEntries(o.vms)));
  try {
    await Promise.all(ports.map((_, i) => start(i)));
    const cfg = join(o.dir, 'haproxy.cfg');
    writeFileSync(cfg, [
      'global', '  maxconn 2000',
      'defaults', '  mode http', '  timeout connect 2s', '  timeout client 30s', '  timeout server 30s', '  timeout tunnel 1h',
      // A request that could not reach a replica (refused, closed at once: SIGKILL) goes to another one.
      '  retries 3', '  option redispatch 1', '  retry-on conn-failure empty-response',
      'frontend vdi', `  bind 127.0.0.1:${front}`, '  default_backend brokers',
      'backend brokers', '  balance roundrobin', '  option httpchk GET /readyz', '  http-check expect status 200',
      '  http-response set-header X-Replica %s',
      // (No on-marked-down shutdown-sessions: it would cut the requests in flight on a leaving replica.)
      '  timeout check 2s', '  default-server inter 300ms fall 2 rise 1',
      ...ports.map((p, i) => `  server r${i} 127.0.0.1:${p} check`),
      'listen stats', `  bind 127.0.0.1:${statsPort}`, '  stats enable', '  stats uri /stats',
      '',
    ].join('\n'));
    const h = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy = h;
    h.stderr!.on('data', (d: Buffer) => (haproxyErr += d.toString()));
    // Also when the test process ends without its after() hooks (a runner timeout).
    const orphan = () => void (h.exitCode === null && h.signalCode === null && h.kill('SIGKILL'));
    process.once('exit', orphan);
    h.once('exit', () => process.off('exit', orphan));
  } catch (err) {
    await close();
    throw err;
  }

  return {
    base: `http://127.0.0.1:${front}`,
    ports,
    gatewayPorts,
    replicas,
    start,
    allUp: (timeoutMs = 15_000) =>
      waitFor(async () => {
        const s = await serverStates().catch(() => ({}) as Record<string, string>);
        return Object.keys(s).length === count && Object.values(s).every((v) => v === 'UP') ? s : null;
      }, timeoutMs, 50).catch((e: Error) => {
        throw new Error(`${e.message}: haproxy: ${haproxyErr}`);
      }),
    replicaOfGateway: (address) => gatewayPorts.findIndex((p) => address === `127.0.0.1:${p}`),
    close,
  };
}

/** Established TCP connections accepted on a local IPv4 port (server side), from /proc/net/tcp. */
export function acceptedOn(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      // local_address is IP:PORT in hex; state 01 = ESTABLISHED
      return f[1]?.endsWith(`:${hex}`) && f[3] === '01';
    }).length;
}
