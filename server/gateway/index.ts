// The broker's own guacd for VNC: a TCP server speaking guacd's side of the Guacamole
// protocol, so guacamole-lite (or Guacamole's web app) can use it exactly like guacd.
import net from 'node:net';
import type { Logger } from 'pino';
import sharp from 'sharp';
import { DEFAULT_TIMINGS, GuacConnection, type ConnectionTimings, type SessionRegistry } from './connection.ts';
import { GuacError, Status } from './protocol.ts';
import { VncSession } from './vnc.session.ts';

export type GatewayOptions = {
  host: string;
  /** 0 = ephemeral */
  port: number;
  logger: Logger;
  /** Overrides guacd's timeouts (tests). */
  timings?: Partial<ConnectionTimings>;
  /** Which VNC endpoints connections may reach (default: any); others get CLIENT_FORBIDDEN. */
  allowUpstream?: (host: string, port: number) => boolean;
};

export type Gateway = {
  host: string;
  port: number;
  /** Open Guacamole client connections (TCP). */
  connections(): number;
  close(): Promise<void>;
};

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const log = opts.logger.child({ component: 'gateway' });
  const timings: ConnectionTimings = { ...DEFAULT_TIMINGS, ...opts.timings };
  sharp.cache(false); // frames are never re-encoded; do not hold memory for them
  const sessions = new Map<string, VncSession>();
  const sockets = new Set<net.Socket>();
  const registry: SessionRegistry = {
    create(settings) {
      if (opts.allowUpstream && !opts.allowUpstream(settings.hostname, settings.port)) {
        throw new GuacError('This VNC server may not be reached through the gateway', Status.CLIENT_FORBIDDEN);
      }
      const s = new VncSession(settings, log, (ended) => sessions.delete(ended.id));
      sessions.set(s.id, s);
      return s;
    },
    find: (id) => sessions.get(id),
  };
  let counter = 0;

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new GuacConnection(socket, registry, log, timings, ++counter);
  });
  server.on('error', (e) => log.error({ err: e }, 'gateway server error'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  log.info({ host: addr.address, port: addr.port }, 'gateway listening');

  return {
    host: addr.address,
    port: addr.port,
    connections: () => sockets.size,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of [...sessions.values()]) s.end();
      for (const s of sockets) s.destroy();
      await closed;
      log.info('gateway closed');
    },
  };
}
