// A VNC "machine" for manual pools: a real Xvnc on a port the test chooses (so it can be
// killed and started again at the same address), painted a solid colour with xsetroot.
// Stopped by pid.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { stopChild } from '../../support/process.ts';
import { probeConsole } from '../../../server/providers/manual/index.ts';

const run = promisify(execFile);

let nextDisplay = 300 + (process.pid % 200);
function freeDisplay(): number {
  for (let i = 0; i < 400; i++) {
    const d = nextDisplay++;
    if (nextDisplay > 699) nextDisplay = 300;
    if (!existsSync(`/tmp/.X11-unix/X${d}`) && !existsSync(`/tmp/.X${d}-lock`)) return d;
  }
  throw new Error('no free X display');
}

export class VncMachine {
  private child: ChildProcess | undefined;
  private display = 0;

  constructor(readonly port: number, readonly colour: string) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.display = freeDisplay();
    this.child = spawn('/usr/bin/Xvnc', [`:${this.display}`, '-geometry', '640x480', '-depth', '24', '-SecurityTypes', 'None', '-localhost', '-rfbport', String(this.port), '-nolisten', 'tcp'], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!(await probeConsole('vnc', '127.0.0.1', this.port, 1000)).ok) {
      if (this.child.exitCode !== null || Date.now() > deadline) throw new Error(`Xvnc on ${this.port} did not answer`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await run('/usr/bin/xsetroot', ['-display', `:${this.display}`, '-solid', this.colour], { timeout: 10_000 });
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
    this.child = undefined;
  }
}
