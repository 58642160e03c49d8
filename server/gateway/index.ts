// The broker's own guacd for VNC: a server speaking guacd's side of the Guacamole protocol,
// so guacamole-lite (or Guacamole's web app) can use it exactly like guacd. Unlike guacd it
// serves only the broker: every connection must present a grant the broker issued for it
// (grant.ts). By default it listens on a unix socket only this process's user can open.
import { chmod, mkdir, mkdtemp, rm, rmdir, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import sharp from 'sharp';
import { DEFAULT_TIMINGS, GuacConnection, type ConnectionTimings, type SessionRegistry } from './connection.ts';
import { endpointAddress, type GuacdEndpoint } from './endpoint.ts';
import { GrantVerifier } from './grant.ts';
import { GuacError, Status } from './protocol.ts';
import { VncSession, type EncodingOptions } from './vnc.session.ts';

export { endpointAddress, parseEndpointAddress, type GuacdEndpoint } from './endpoint.ts';
export { GRANT_TTL_MS, grantKey, issueGrant, type Grant, type GrantTarget } from './grant.ts';

/** TCP (tests, or replicas shadowing across machines), or a unix socket in a 0700 directory ('' = a fresh one). */
export type GatewayListen = { host: string; port: number } | { socketDir: string };

export type GatewayOptions = {
  listen: GatewayListen;
  /** Key that grants are signed with (grantKey(tunnel secret)). */
  grantKey: Buffer;
  logger: Logger;
  /** Overrides guacd's timeouts (tests). */
  timings?: Partial<ConnectionTimings>;
  /** Which VNC endpoints connections may reach (default: any granted); others get CLIENT_FORBIDDEN. */
  allowUpstream?: (host: string, port: number) => boolean;
  /** Clock for grant expiry (tests). */
  now?: () => number;
  /** Lossy quality bounds and the lossless refresh delay (config gateway.*); defaults otherwise. */
  encoding?: Partial<EncodingOptions>;
};

export type Gateway = {
  /** Where to connect. */
  endpoint: GuacdEndpoint;
  /** The endpoint as one string; grants name it. */
  address: string;
  /** Open Guacamole client connections. */
  connections(): number;
  close(): Promise<void>;
};

const SOCKET_NAME = 'gateway.sock';

/** Makes (or checks) the socket's 0700 directory; returns the socket path and what to remove at close. */
async function socketPlace(dir: string): Promise<{ file: string; ownDir: string | undefined }> {
  if (!dir) {
    const d = await mkdtemp(path.join(tmpdir(), 'vdi-gateway-')); // mkdtemp makes it 0700
    return { file: path.join(d, SOCKET_NAME), ownDir: d };
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid())) throw new Error(`gateway.socketDir ${dir} is not a directory owned by this user`);
  await chmod(dir, 0o700);
  const file = path.join(dir, SOCKET_NAME);
  // A socket left by a crashed broker is removed; one that answers belongs to a live broker.
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(file, () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });
  if (alive) throw new Error(`another gateway listens on ${file}`);
  await rm(file, { force: true });
  return { file, ownDir: undefined };
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const log = opts.logger.child({ component: 'gateway' });
  const timings: ConnectionTimings = { ...DEFAULT_TIMINGS, ...opts.timings };
  sharp.cache(false); // frames are never re-encoded; do not hold memory for them
  const sessions = new Map<string, VncSession>();
  const sockets = new Set<net.Socket>();
  let sessionCount = 0;
  let counter = 0;
  let grants: GrantVerifier | undefined;
  const registry: SessionRegistry = {
    admit(token) {
      // Until the address is known (just after listen) nothing is admitted.
      const r = grants ? grants.take(token) : { refused: 'not ready' };
      if ('refused' in r) {
        log.info({ reason: r.refused }, 'connection without a valid grant refused');
        return undefined;
      }
      return r.grant;
    },
    create(settings) {
      if (opts.allowUpstream && !opts.allowUpstream(settings.hostname, settings.port)) {
        throw new GuacError('This VNC server may not be reached through the gateway', Status.CLIENT_FORBIDDEN);
      }
      const s = new VncSession(settings, log, ++sessionCount, (ended) => sessions.delete(ended.id), opts.encoding);
      sessions.set(s.id, s);
      return s;
    },
    find: (id) => sessions.get(id),
  };

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new GuacConnection(socket, registry, log, timings, ++counter);
  });
  server.on('error', (e) => log.error({ err: e }, 'gateway server error'));

  const place = 'socketDir' in opts.listen ? await socketPlace(opts.listen.socketDir) : undefined;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (place) server.listen(place.file, done);
    else server.listen((opts.listen as { port: number }).port, (opts.listen as { host: string }).host, done);
  }).catch(async (e: unknown) => {
    if (place?.ownDir) await rm(place.ownDir, { recursive: true, force: true });
    throw e;
  });
  let endpoint: GuacdEndpoint;
  if (place) {
    await chmod(place.file, 0o600);
    endpoint = { path: place.file };
  } else {
    const addr = server.address() as net.AddressInfo;
    endpoint = { host: addr.address, port: addr.port };
  }
  const address = endpointAddress(endpoint);
  grants = new GrantVerifier(opts.grantKey, address, opts.now);

  log.info({ address }, 'gateway listening');
  return {
    endpoint,
    address,
    connections: () => sockets.size,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of [...sessions.values()]) s.end();
      for (const s of sockets) s.destroy();
      await closed;
      if (place) {
        await rm(place.file, { force: true });
        if (place.ownDir) await rmdir(place.ownDir).catch(() => undefined);
      }
      log.info('gateway closed');
    },
  };
}
