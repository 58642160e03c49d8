// The gateway process of the stream bench (forked by gateway-process.ts): the real built-in
// gateway, configured over IPC; reports its CPU and memory on request; exits when asked or
// when its parent goes away.
import pino from 'pino';
import { startGateway, type Gateway, type GatewayOptions } from '../../server/gateway/index.ts';

let gw: Gateway | undefined;
const gc = (globalThis as { gc?: () => void }).gc;
process.on('disconnect', () => process.exit(0));
process.on('message', async (m: { start?: { listen: GatewayOptions['listen']; grantKey: string; timings?: GatewayOptions['timings'] }; usage?: boolean; close?: boolean }) => {
  if (m.start) {
    gw = await startGateway({ listen: m.start.listen, grantKey: Buffer.from(m.start.grantKey, 'base64'), timings: m.start.timings, logger: pino({ level: 'warn' }) });
    process.send!({ started: { endpoint: gw.endpoint, address: gw.address } });
  } else if (m.usage) {
    gc?.();
    const u = process.cpuUsage();
    const mem = process.memoryUsage();
    process.send!({ usage: { pid: process.pid, cpuMs: (u.user + u.system) / 1000, rss: mem.rss, heap: mem.heapUsed, external: mem.external }, connections: gw?.connections() ?? 0 });
  } else if (m.close) {
    await gw?.close();
    process.exit(0);
  }
});
