// The built-in gateway in a process of its own, for the stream bench (see gateway-hook.mjs):
// exports what server/gateway/index.ts exports, but startGateway forks gateway-child.ts, which
// runs the real startGateway with the same options (grant key, listen) and answers usage
// requests. The returned Gateway behaves as the in-process one does for the tunnel.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Gateway, GatewayOptions, GuacdEndpoint } from '../../server/gateway/index.ts';

export * from '../../server/gateway/index.ts';

export type ProcessUsage = { pid: number; cpuMs: number; rss: number; heap: number; external: number };

/** What the bench's broker process reads to report the gateway's usage. */
export const gatewayProcess: { child?: ChildProcess; usage?: () => Promise<ProcessUsage> } = {};

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const child = fork(fileURLToPath(new URL('./gateway-child.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx', '--expose-gc', ...(process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean)],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  gatewayProcess.child = child;
  let connections = 0;
  const pending: Array<(u: ProcessUsage) => void> = [];
  const started = new Promise<{ endpoint: GuacdEndpoint; address: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`gateway process exited with ${code}`)));
    child.on('message', (m: { started?: { endpoint: GuacdEndpoint; address: string }; usage?: ProcessUsage; connections?: number }) => {
      if (m.started) resolve(m.started);
      if (m.usage) pending.shift()?.(m.usage);
      if (typeof m.connections === 'number') connections = m.connections;
    });
  });
  // The key travels over IPC, never in argv or the environment.
  child.send({ start: { listen: opts.listen, grantKey: opts.grantKey.toString('base64'), timings: opts.timings } });
  const where = await started;
  gatewayProcess.usage = () =>
    new Promise<ProcessUsage>((resolve) => {
      pending.push(resolve);
      child.send({ usage: true });
    });
  return {
    ...where,
    connections: () => connections,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ close: true });
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
