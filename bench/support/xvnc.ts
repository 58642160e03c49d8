// An Xvnc (tigervnc-standalone-server) for the stream bench: 1280×720 depth 24 by default,
// security None, loopback only, on a free display and port; stopped by pid. Unlike the tests'
// test/gateway/support/xvnc.ts it turns TigerVNC's blacklist off (-UseBlacklist=0): this
// one Xvnc stands for a few hundred machines, and the readiness checks below plus hundreds of
// console probes and connections from 127.0.0.1 at once got it to refuse 127.0.0.1 ("Too many
// security failures") in a trial run.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { stopChild } from '../../test/support/process.ts';
import { freePort } from '../../test/gateway/support/xvnc.ts';

export type BenchXvnc = { display: number; port: number; pid: number; stop(): Promise<void> };

function bannerAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => (s.destroy(), resolve(false)), 1000);
    s.once('data', (d) => (clearTimeout(t), s.destroy(), resolve(d.toString('latin1').startsWith('RFB '))));
    s.once('error', () => (clearTimeout(t), resolve(false)));
  });
}

export async function startBenchXvnc(width = 1280, height = 720): Promise<BenchXvnc> {
  for (let attempt = 0; attempt < 5; attempt++) {
    let display = 300 + ((process.pid + attempt * 7) % 200);
    while (existsSync(`/tmp/.X11-unix/X${display}`) || existsSync(`/tmp/.X${display}-lock`)) display++;
    const port = await freePort();
    const child = spawn(
      '/usr/bin/Xvnc',
      [`:${display}`, '-geometry', `${width}x${height}`, '-depth', '24', '-SecurityTypes', 'None', '-localhost', '-rfbport', String(port), '-nolisten', 'tcp', '-UseBlacklist=0'],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && child.exitCode === null) {
      if (await bannerAnswers(port)) return { display, port, pid: child.pid!, stop: () => stopChild(child) };
      await new Promise((r) => setTimeout(r, 100));
    }
    await stopChild(child);
  }
  throw new Error('could not start Xvnc');
}
