// A real RDP server: Debian's xrdp, in the foreground (`xrdp -n`) with a private ini on a free
// loopback port and a private pid file, stopped by pid. Enough for the X.224 health check
// (no session manager is started: nobody logs in).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stopChild } from '../../support/process.ts';
import { freePort } from '../../support/redis.ts';

export const XRDP = '/usr/sbin/xrdp';
export const hasXrdp = () => existsSync(XRDP) && existsSync('/etc/xrdp/xrdp.ini');

export interface Xrdp {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export async function startXrdp(): Promise<Xrdp> {
  const dir = mkdtempSync(path.join(tmpdir(), 'xrdp-'));
  const port = await freePort();
  // The packaged ini with our port and address; its other sections (keymaps, TLS files) as shipped.
  const ini = readFileSync('/etc/xrdp/xrdp.ini', 'utf8')
    .replace(/^port=.*$/m, `port=tcp://127.0.0.1:${port}`)
    .replace(/^security_layer=.*$/m, 'security_layer=negotiate');
  const iniPath = path.join(dir, 'xrdp.ini');
  writeFileSync(iniPath, ini);
  const child = spawn(XRDP, ['-n', '-c', iniPath], { stdio: 'ignore' });
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`xrdp did not listen on ${port} (exit ${child.exitCode})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, pid: child.pid!, stop };
}
