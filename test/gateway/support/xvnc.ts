// Starts a real Xvnc (tigervnc-standalone-server) on a free display ≥ 40 and a free
// loopback port, and stops it by pid. Also runs X clients (xsetroot) against it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { stopChild } from '../../support/process.ts';
import { freePort } from '../../support/redis.ts';

const run = promisify(execFile);

export const XVNC = '/usr/bin/Xvnc';
export const hasXvnc = () => existsSync(XVNC) && existsSync('/usr/bin/xsetroot') && existsSync('/usr/bin/vncpasswd');

export { freePort };

let nextDisplay = 40 + (process.pid % 50);
function freeDisplay(): number {
  for (let i = 0; i < 200; i++) {
    const d = nextDisplay++;
    if (nextDisplay > 299) nextDisplay = 40;
    if (!existsSync(`/tmp/.X11-unix/X${d}`) && !existsSync(`/tmp/.X${d}-lock`)) return d;
  }
  throw new Error('no free X display');
}

export type Xvnc = { display: number; port: number; pid: number; stop(): Promise<void>; x(cmd: string, ...args: string[]): Promise<void> };

async function waitForBanner(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Xvnc exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString('latin1').startsWith('RFB '));
      });
      s.once('error', () => resolve(false));
      setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 1000);
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('Xvnc did not answer');
}

export async function startXvnc(opts: { width: number; height: number; password?: string }): Promise<Xvnc> {
  const dir = mkdtempSync(path.join(tmpdir(), 'gw-xvnc-'));
  const args: string[] = [];
  if (opts.password !== undefined) {
    const { stdout } = await run('/bin/sh', ['-c', `printf '%s\\n' "$PW" | vncpasswd -f`], {
      env: { ...process.env, PW: opts.password },
      encoding: 'buffer',
    });
    const file = path.join(dir, 'passwd');
    writeFileSync(file, stdout as unknown as Buffer, { mode: 0o600 });
    args.push('-SecurityTypes', 'VncAuth', '-PasswordFile', file);
  } else {
    args.push('-SecurityTypes', 'None');
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const display = freeDisplay();
    const port = await freePort();
    const child = spawn(
      XVNC,
      [`:${display}`, '-geometry', `${opts.width}x${opts.height}`, '-depth', '24', '-localhost', '-rfbport', String(port), '-nolisten', 'tcp', ...args],
      { stdio: 'ignore' },
    );
    const stop = async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    };
    try {
      await waitForBanner(port, child, 10_000);
    } catch {
      await stop();
      continue;
    }
    return {
      display,
      port,
      pid: child.pid!,
      stop,
      x: async (cmd, ...a) => {
        await run(cmd, ['-display', `:${display}`, ...a], { timeout: 10_000 });
      },
    };
  }
  throw new Error('could not start Xvnc');
}
