// Real Redis for tests: the machine's server with a private key prefix, or a private
// redis-server (own port, own dir, AOF on) for tests that stop or restart it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export const SHARED_REDIS_URL = process.env.VDI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

export function uniquePrefix(name: string): string {
  return `vditest:${name}:${process.pid}:${Math.random().toString(36).slice(2, 8)}:`;
}

/** Deletes every key under the prefix (tests only: SCAN, never KEYS). */
export async function dropPrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } catch {
    // the server may be gone already (outage tests)
  } finally {
    r.disconnect();
  }
}

/**
 * A port on 127.0.0.1 that nothing listens on now, for a server the test starts later. It is
 * picked below the machine's ephemeral range: a port from listen(0) is handed out again by the
 * kernel to the next listen(0) or outgoing connection (another worker's), and a test's haproxy
 * once lost its port that way between the pick and its bind.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const low = Math.max(1024, Math.min(20_000, ephemeralLow - 4096));
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (ephemeralLow - low));
    if (picked.has(port)) continue;
    if (await listenable(port)) {
      picked.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${low}-${ephemeralLow - 1}`);
}

/** Ports this process has handed out (a server may not be bound on them yet). */
const picked = new Set<number>();

/** The machine's ephemeral port range (net.ipv4.ip_local_port_range). */
export function ephemeralRange(): [number, number] {
  try {
    const [a = 0, b = 0] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (a > 1024 && b >= a) return [a, b];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

export interface PrivateRedis {
  url: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/** A redis-server of the test's own, with AOF, that the test can stop and start again. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'vdi-redis-'));
  let child: ChildProcess | null = null;
  const url = `redis://127.0.0.1:${port}/0`;
  const start = async () => {
    child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--appendonly', 'yes', '--save', ''], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => undefined);
      try {
        await r.connect();
        if ((await r.ping()) === 'PONG') return;
      } catch {
        // not yet
      } finally {
        r.disconnect();
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error('private redis did not start');
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((res) => {
      c.once('exit', () => res());
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    url, port, dir, start, stop,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
