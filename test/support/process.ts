// Starting and stopping broker processes in tests (always by pid, also on failure).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path, { dirname, join } from 'node:path';
import { BROKER_NODE_FLAGS } from '../../server/node-flags.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

export interface BrokerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/**
 * Where and how a broker process starts. The benches run another checkout's broker (`root`, with
 * that tree's `nodeFlags`), give it longer to start, and keep only the tail of its output (a
 * long load run would otherwise hold every line it logged).
 */
export interface BrokerProcessOptions {
  root?: string;
  nodeFlags?: readonly string[];
  startTimeoutMs?: number;
  outputTailChars?: number;
}

export async function startBrokerProcess(script: string, env: Record<string, string>, args: string[] = [], o: BrokerProcessOptions = {}): Promise<BrokerProcess> {
  const root = o.root ?? ROOT;
  // VDI_TEST_NODE_ARGS: extra node flags for the broker (e.g. --cpu-prof when profiling a bench)
  const nodeArgs = (process.env.VDI_TEST_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...(o.nodeFlags ?? BROKER_NODE_FLAGS), ...nodeArgs, '--import', 'tsx', join(root, script), ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(child);
  let out = '';
  const tail = o.outputTailChars;
  const keep = (d: Buffer) => {
    out += d.toString();
    if (tail !== undefined && out.length > tail) out = out.slice(-tail);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = await new Promise<string>((resolve, reject) => {
    // A bound, not a wait: under the full suite's load (VMs beside it) a start that compiles
    // the sources through tsx once took longer than 30 s (replicas-viewer.test.ts).
    const t = setTimeout(() => reject(new Error(`broker did not start: ${out}`)), o.startTimeoutMs ?? 90_000);
    const check = () => {
      const m = /LISTENING (\S+)/.exec(out) ?? /"url":"([^"]+)","msg":"vdi-broker listening"/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!.replace(/\/$/, ''));
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`broker exited with ${code}: ${out}`));
    });
  });
  return {
    child,
    url,
    output: () => out,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      return new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => {
          started.delete(child);
          resolve(code);
        });
        child.kill(signal);
      });
    },
  };
}

/** Stops a child a test started: SIGTERM by pid, SIGKILL if it is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
  if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
}

/** Pids of QEMU processes whose command line points into `root` (a test's own temp dir). */
export function qemuPidsUnder(root: string): number[] {
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(root + path.sep)) pids.push(Number(e));
    } catch {
      // gone
    }
  }
  return pids;
}
