// A throw-away redis-server of the test's own (free port, temp dir, no persistence) that the
// test can stall (SIGSTOP) and wake (SIGCONT); always stopped by its pid, also on failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redis.ts';

export interface TestRedisServer {
  url: string;
  port: number;
  pid: number;
  /** A plain client (no timeouts) for arranging state; closed by stop(). */
  admin: Redis;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) {
    try {
      process.kill(c.pid!, 'SIGCONT');
      c.kill('SIGKILL');
    } catch {
      // gone already
    }
  }
});

/** Starts a redis-server; `restart(args)` stops it and starts it again on the same port and dir. */
export async function startRedisServer(extraArgs: string[] = []): Promise<TestRedisServer & { restart(args: string[]): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'vdi-redis-'));
  const url = `redis://127.0.0.1:${port}/0`;
  let child: ChildProcess;
  let paused = false;
  // No ready check: a server still loading its data set answers PING but not INFO's "loading:0".
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => 50 });
  admin.on('error', () => undefined);
  const spawnServer = async (args: string[]) => {
    child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' });
    running.add(child);
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if (admin.status === 'wait') await admin.connect();
        if ((await admin.ping()) === 'PONG') return;
      } catch (err) {
        // An error reply (LOADING, MASTERDOWN) means the server is up and answering.
        if ((err as Error).name === 'ReplyError') return;
        if (Date.now() > deadline || child.exitCode !== null) throw err;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const kill = async () => {
    const c = child;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      if (paused) process.kill(c.pid!, 'SIGCONT');
      paused = false;
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    running.delete(c);
  };
  const stop = async () => {
    admin.disconnect();
    await kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await spawnServer(extraArgs);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url, port, admin, stop,
    get pid() {
      return child.pid!;
    },
    pause() {
      process.kill(child.pid!, 'SIGSTOP');
      paused = true;
    },
    resume() {
      process.kill(child.pid!, 'SIGCONT');
      paused = false;
    },
    async restart(args: string[]) {
      await kill();
      await spawnServer(args);
    },
  };
}
