// The Guacamole WebSocket tunnel at /api/v1/tunnel on the broker's own HTTP server:
// browser (guacamole-common-js) ⇄ this tunnel (guacamole-lite) ⇄ guacd or the built-in
// gateway ⇄ the desktop's console. A connection is opened by a single-use ticket (tickets.ts),
// sent as the first message by the login it was issued to, from an allowed Origin (handover.ts);
// its life is reported to the session (connected, disconnected, activity, bytes) and a second
// tab of the same session takes it over, on any replica (Redis pub/sub). See docs/streaming.md.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/index.ts';
import type { Store, TunnelEvent } from '../store/index.ts';
import type { Broker } from '../broker/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import { requestIdOf, type Logger, type Metrics } from '../observability/index.ts';
import { endpointAddress, grantKey, issueGrant, parseEndpointAddress, startGateway, type Gateway, type GuacdEndpoint } from '../gateway/index.ts';
import { Status } from '../gateway/protocol.ts';
import { refuse, TunnelConnection, WebSocketServer, type WsSocket } from './lite.ts';
import { TicketError, TicketService, TUNNEL_PATH, type Ticket } from './tickets.ts';
import { clientAddress, originAllowed, TicketHandover } from './handover.ts';
import { ensureRecordingsDir, recordingFile, StreamRecorder, TunnelMeter } from './recorder.ts';
import type { Login } from '../auth/index.ts';

export { TicketService, TicketError, TUNNEL_PATH, type IssuedTicket, type Ticket } from './tickets.ts';

export interface TunnelDeps {
  server: Server;
  store: Store;
  broker: Broker;
  providers: ProviderRegistry;
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** The login behind an upgrade request (cookie session or API key): BrokerApp.auth.loginOfUpgrade. */
  logins: (req: IncomingMessage) => Promise<Login | null>;
  /** express's `trust proxy fn` (BrokerApp.app.get('trust proxy fn')): audit entries get the client's address behind a proxy. */
  trustProxy?: (addr: string, hop: number) => boolean;
}

export interface AttachedTunnel {
  /** Where guacd (or the built-in gateway) listens; `path`: a unix socket (host and port unused). */
  guacd: { host: string; port: number; path?: string };
  /** Open tunnels on this replica. */
  count(): number;
  close(): Promise<void>;
}

/** Input updates the session's lastActivityAt at most this often. */
const ACTIVITY_EVERY_MS = 5_000;
/** How often open tunnels check that their session is still live. */
const SWEEP_EVERY_MS = 5_000;
/** A browser silent this long is gone (guacamole-common-js pings every 500 ms). */
const MAX_INACTIVITY_MS = 15_000;
const MAX_MESSAGE_BYTES = 512 * 1024;
/** Live statistics (SessionStatsRepository) and recording sizes are written this often. */
const STATS_EVERY_MS = 2_000;
const MESSAGES = {
  takenOver: 'This desktop was opened in another window or tab.',
  loggedOff: 'The session has ended.',
  ownerLeft: "The user's connection has ended.",
  shutdown: 'The broker is restarting; reconnect in a moment.',
  notRecorded: 'The session can no longer be recorded; reconnect in a moment.',
  controlRevoked: 'The user took back control; watching continues read-only.',
  disconnected: 'The helpdesk disconnected this window; your desktop keeps running.',
};

interface Tunnel {
  conn: TunnelConnection;
  ticket: Ticket;
  /** This connection's claim on the session's tunnel (connect tickets). */
  owner: string;
  /** Order of claims on the session (higher wins a takeover). */
  seq: number;
  readyAt: number;
  guacConnection: string;
  lastActivity: number;
  /** The upgrade request's id (X-Request-Id), on the tunnel's log lines. */
  reqId: string;
  /** Live figures (connect tickets), written to the session's stats every STATS_EVERY_MS. */
  meter?: TunnelMeter;
  /** The session recording of this connection (pool policy on / notify). */
  recording?: { id: string; rec: StreamRecorder; startedAt: number };
}

function tunnelMetrics(registry: Registry) {
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    opened: get('vdi_tunnel_connections_total', () => new Counter({ name: 'vdi_tunnel_connections_total', help: 'Tunnel WebSockets by kind and outcome', labelNames: ['kind', 'outcome'] as const, registers: [registry] })),
    open: get('vdi_tunnels_open', () => new Gauge({ name: 'vdi_tunnels_open', help: 'Open tunnels on this replica', labelNames: ['kind'] as const, registers: [registry] })),
    bytes: get('vdi_tunnel_bytes_total', () => new Counter({ name: 'vdi_tunnel_bytes_total', help: 'Tunnel traffic (in = from browsers)', labelNames: ['direction'] as const, registers: [registry] })),
  };
}

/** Image formats a browser may offer (guacd and the built-in gateway use the best it can decode). */
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp']);
/** Raw PCM as guacamole-common-js's AudioPlayer offers it: `audio/L16;rate=44100,channels=2`. */
const AUDIO_TYPE = /^audio\/L(8|16);rate=\d{4,6},channels=[12]$/;

/** Query values a browser may add to the ticket (screen size, time zone, the image and audio formats it decodes); all others are ignored. */
function clientQuery(u: URL): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const int = (name: string, min: number, max: number) => {
    const v = u.searchParams.get(name);
    if (v && /^\d{1,5}$/.test(v) && Number(v) >= min && Number(v) <= max) out[name] = v;
  };
  int('width', 64, 8192);
  int('height', 64, 8192);
  int('dpi', 48, 600);
  const tz = u.searchParams.get('timezone');
  if (tz && /^[A-Za-z0-9_+/-]{1,64}$/.test(tz)) out.timezone = tz;
  const images = [...new Set(u.searchParams.getAll('image').filter((t) => IMAGE_TYPES.has(t)))];
  // PNG is what every Guacamole client decodes; an offer never takes it away.
  if (images.length) out.image = [...new Set(['image/png', ...images])];
  const audio = [...new Set(u.searchParams.getAll('audio').filter((t) => AUDIO_TYPE.test(t)))].slice(0, 8);
  if (audio.length) out.audio = audio;
  return out;
}

export async function attachTunnel(o: TunnelDeps): Promise<AttachedTunnel> {
  const log = o.logger.child({ component: 'tunnel' });
  const m = tunnelMetrics(o.metrics.registry);
  let gateway: Gateway | null = null;
  let grants: Buffer | undefined;
  let guacd: GuacdEndpoint;
  if (o.config.guacd.host) {
    guacd = { host: o.config.guacd.host, port: o.config.guacd.port };
  } else {
    // The built-in gateway admits only what this tunnel grants, signed with a key every replica derives.
    grants = grantKey(await o.store.tickets.secret(o.config.tunnel.secret));
    const g = o.config.gateway;
    const encoding = { quality: { min: Math.min(g.lossyQualityMin, g.lossyQualityMax), max: g.lossyQualityMax }, losslessRefreshMs: g.losslessRefreshMs };
    gateway = await startGateway({ listen: g.listen === 'tcp' ? { host: g.host, port: g.port } : { socketDir: g.socketDir }, grantKey: grants, logger: o.logger, encoding });
    guacd = gateway.endpoint;
  }
  const guacdName = endpointAddress(guacd);
  /** The built-in gateway's admission for a ticket's connection (none with an external guacd). */
  const grantFor = (t: Ticket): string | undefined => {
    if (!grants) return undefined;
    if (t.kind === 'shadow') return issueGrant(grants, { gateway: t.guacd ?? guacdName, join: t.join ?? '', readOnly: !t.control });
    const port = Number(t.settings.port || 5900);
    return issueGrant(grants, { gateway: guacdName, host: t.settings.hostname ?? '', port, readOnly: t.settings['read-only'] === 'true' });
  };
  const tickets = new TicketService({ store: o.store, broker: o.broker, providers: o.providers, config: o.config });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE_BYTES,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (protocols: Set<string>) => (protocols.has('guacamole') ? 'guacamole' : false),
  });
  const live = new Set<Tunnel>();
  const pending = new Set<WsSocket>();
  const work = new Set<Promise<unknown>>();
  let counter = 0;
  let closing = false;

  const track = (p: Promise<unknown>) => {
    const q = p.catch((err: unknown) => log.warn({ err: (err as Error).message }, 'tunnel bookkeeping failed')).finally(() => work.delete(q));
    work.add(q);
  };
  const ofSession = (session: string) => [...live].filter((t) => t.ticket.session === session);

  /** Highest claim wins: lower ones of the session close, or this one does if it lost. */
  const settleTakeover = (session: string, owner: string, seq: number) => {
    for (const t of ofSession(session)) {
      if (t.ticket.kind !== 'connect' || t.owner === owner || !t.seq) continue;
      if (t.seq < seq) t.conn.fail(MESSAGES.takenOver, Status.SESSION_CONFLICT);
    }
  };

  const onEvent = (e: TunnelEvent) => {
    if (e.type === 'takeover') settleTakeover(e.session, e.owner, e.seq);
    else if (e.type === 'ended') {
      for (const t of ofSession(e.session)) if (t.ticket.kind === 'shadow' && t.ticket.join === e.guacConnection) t.conn.fail(MESSAGES.ownerLeft, Status.SESSION_CLOSED);
    } else if (e.type === 'shadow-revoked') {
      for (const t of ofSession(e.session)) if (t.ticket.kind === 'shadow' && t.ticket.control) t.conn.fail(MESSAGES.controlRevoked, Status.SESSION_CLOSED);
    } else if (e.type === 'disconnect') {
      for (const t of ofSession(e.session)) if (t.ticket.kind === 'connect') t.conn.fail(MESSAGES.disconnected, Status.SESSION_CONFLICT);
    }
  };
  const unsubscribe = o.store.tickets.subscribe(onEvent, (err) => log.warn({ err: err.message }, 'tunnel events unavailable'));

  async function onReady(t: Tunnel): Promise<void> {
    t.readyAt = Date.now();
    t.guacConnection = t.conn.guacamoleConnectionId ?? '';
    const session = t.ticket.session;
    if (t.ticket.kind === 'shadow') {
      log.info({ session, by: t.ticket.user }, 'shadow started');
      return;
    }
    const seq = await o.store.tickets.claim(session, t.owner, t.guacConnection, guacdName);
    if (!seq) return t.conn.fail(MESSAGES.loggedOff, Status.SESSION_CLOSED);
    t.seq = seq;
    if (!live.has(t)) return; // closed meanwhile: its close handler releases the claim
    if (ofSession(session).some((x) => x.ticket.kind === 'connect' && x.seq > seq)) return t.conn.fail(MESSAGES.takenOver, Status.SESSION_CONFLICT);
    settleTakeover(session, t.owner, seq);
    await o.store.tickets.publish({ type: 'takeover', session, owner: t.owner, seq });
    await o.broker.sessions.connected(session);
    log.info({ reqId: t.reqId, session, user: t.ticket.user, desktop: t.ticket.desktop }, 'tunnel connected');
  }

  async function onClosed(t: Tunnel): Promise<void> {
    const session = t.ticket.session;
    const kind = t.ticket.kind;
    m.open.dec({ kind });
    m.bytes.inc({ direction: 'in' }, t.conn.bytesIn);
    m.bytes.inc({ direction: 'out' }, t.conn.bytesOut);
    if (t.recording) {
      const r = t.recording;
      await r.rec.close();
      await o.store.recordings.update(r.id, { bytes: r.rec.bytes, endedAt: Date.now() });
      log.info({ session, recording: r.id, bytes: r.rec.bytes, truncated: r.rec.truncated }, 'recording ended');
    }
    if (!t.readyAt) return;
    if (t.meter) await writeStats(t);
    const ms = Date.now() - t.readyAt;
    log.info({ reqId: t.reqId, session, kind, status: `0x${t.conn.endStatus.toString(16).padStart(4, '0')}`, ms, bytesIn: t.conn.bytesIn, bytesOut: t.conn.bytesOut }, 'tunnel closed');
    if (kind === 'shadow') return;
    const r = await o.store.tickets.release(session, t.owner, { bytesIn: t.conn.bytesIn, bytesOut: t.conn.bytesOut, ms });
    if (!r.wasOwner) return; // taken over: the new tab owns the session now
    await o.broker.sessions.disconnected(session);
    // A tab that claimed between our release and `disconnected` must not look disconnected.
    const now = await o.store.tickets.tunnel(session);
    if (now?.owner) await o.broker.sessions.connected(session);
    for (const x of ofSession(session)) if (x.ticket.kind === 'shadow' && x.ticket.join === t.guacConnection) x.conn.fail(MESSAGES.ownerLeft, Status.SESSION_CLOSED);
    await o.store.tickets.publish({ type: 'ended', session, guacConnection: t.guacConnection });
  }

  function onInput(t: Tunnel): void {
    if (t.ticket.kind !== 'connect' || !t.readyAt) return;
    t.meter?.input();
    const now = Date.now();
    if (now - t.lastActivity < ACTIVITY_EVERY_MS) return;
    t.lastActivity = now;
    track(o.broker.sessions.activity(t.ticket.session));
  }

  /** Closes a socket whose ticket was refused, and writes why to the audit trail (never the ticket). */
  function refused(ws: WsSocket, req: IncomingMessage, err: TicketError, login: Login | null): void {
    const t = err.ticket;
    m.opened.inc({ kind: t?.kind ?? 'unknown', outcome: 'refused' });
    log.info({ reason: err.reason, session: t?.session }, 'tunnel refused');
    refuse(ws, err.message, err.status);
    const details = { reason: err.reason, status: err.status, origin: (req.headers.origin ?? '').slice(0, 200), ...(t ? { kind: t.kind, ticketUser: t.user, desktop: t.desktop } : {}) };
    track(o.broker.audit.record({ principal: login?.principal ?? null, address: clientAddress(req, o.trustProxy) }, 'tunnel.refused', { type: 'session', id: t?.session ?? '' }, details, 'denied'));
  }

  async function accept(ws: WsSocket, req: IncomingMessage, url: URL): Promise<void> {
    // The ticket comes as the first message; what follows it is held (bounded) and relayed.
    const handover = new TicketHandover(ws);
    pending.add(ws);
    let ticket: Ticket;
    let login: Login | null = null;
    let early: Buffer[];
    // The login is looked up (Redis) while the ticket is on its way.
    const who = o.logins(req).catch(() => {
      throw new TicketError('The broker cannot check logins right now; try again.', Status.UPSTREAM_UNAVAILABLE, 'unavailable');
    });
    who.catch(() => undefined);
    try {
      const leaked = url.searchParams.get('token');
      if (leaked !== null) {
        // In a URL it may sit in proxy logs and browser history by now: burn it.
        login = await who.catch(() => null);
        const t = await tickets.take(leaked).catch((e: unknown) => (e instanceof TicketError ? e.ticket : undefined));
        throw new TicketError('Tickets are not accepted in the URL.', Status.CLIENT_UNAUTHORIZED, 'ticket_in_url', t);
      }
      const [id, l] = await Promise.all([handover.ticket, who]);
      login = l;
      if (id === null && ws.readyState !== ws.OPEN) return; // the client left before sending one
      if (!id) throw new TicketError('No ticket was sent.', Status.CLIENT_UNAUTHORIZED, 'no_ticket');
      ticket = await tickets.redeem(id, login, originAllowed(req, { publicUrl: o.config.server.publicUrl, allowedOrigins: o.config.tunnel.allowedOrigins }));
      if (handover.overrun) throw new TicketError('Too much input before the desktop answered', Status.CLIENT_OVERRUN, 'overrun', ticket);
    } catch (err) {
      if (!(err instanceof TicketError)) throw err;
      return refused(ws, req, err, login);
    } finally {
      pending.delete(ws);
      early = handover.release();
    }
    if (ws.readyState !== ws.OPEN) return; // the browser gave up meanwhile
    if (closing) return refuse(ws, MESSAGES.shutdown, Status.UPSTREAM_UNAVAILABLE);
    let recording: Tunnel['recording'];
    if (ticket.kind === 'connect' && (ticket.recording === 'on' || ticket.recording === 'notify')) {
      try {
        recording = startRecording(ticket);
      } catch (err) {
        // The pool says this session is recorded: it does not stream unrecorded.
        log.error({ err: (err as Error).message, session: ticket.session }, 'cannot record the session');
        return refused(ws, req, new TicketError('The session cannot be recorded right now; try again later.', Status.SERVER_ERROR, 'recording_unavailable', ticket), login);
      }
    }
    const conn = new TunnelConnection(++counter, ws, { ...(ticket.join ? { join: ticket.join } : { type: ticket.protocol }), settings: ticket.settings }, clientQuery(url), {
      maxInactivityMs: MAX_INACTIVITY_MS,
      log: { debug: (msg) => log.debug({ session: ticket.session }, msg), warn: (msg) => log.debug({ session: ticket.session }, msg) },
    });
    const t: Tunnel = { conn, ticket, owner: randomUUID(), seq: 0, readyAt: 0, guacConnection: '', lastActivity: 0, reqId: requestIdOf(req.headers) };
    conn.readOnly = ticket.kind === 'shadow' && !ticket.control;
    conn.onInput = () => onInput(t);
    if (ticket.kind === 'connect') {
      const meter = new TunnelMeter(clientAddress(req, o.trustProxy), String(req.headers['user-agent'] ?? '').slice(0, 300), Date.now, (ms) => o.metrics.tunnelRtt.observe(ms / 1000));
      t.meter = meter;
      t.recording = recording;
      const rec = recording?.rec;
      conn.onToClient = rec ? (msg) => (meter.toClient(msg), rec.write(msg)) : (msg) => meter.toClient(msg);
      conn.onClientSync = (ts) => meter.clientSync(ts);
    }
    live.add(t);
    m.opened.inc({ kind: ticket.kind, outcome: 'accepted' });
    m.open.inc({ kind: ticket.kind });
    conn.on('ready', () => track(onReady(t)));
    conn.once('close', () => {
      live.delete(t);
      track(onClosed(t));
    });
    conn.connect(ticket.kind === 'shadow' ? (parseEndpointAddress(ticket.guacd) ?? guacd) : guacd, grantFor(ticket));
    for (const d of early) conn.sendMessageToGuacd(d);
  }

  let recordingsDir: string | undefined;
  /** Opens a new recording file for a connect ticket and indexes it (throws when the file cannot be made). */
  function startRecording(ticket: Ticket): NonNullable<Tunnel['recording']> {
    recordingsDir ??= ensureRecordingsDir(o.config.recordings.dir);
    const id = randomUUID();
    const file = recordingFile(recordingsDir, id);
    const rec = new StreamRecorder(file, (err) => log.error({ err: err.message, recording: id }, 'recording write failed'));
    const startedAt = Date.now();
    track(o.store.recordings.add({ id, session: ticket.session, user: ticket.user, desktop: ticket.desktop, pool: ticket.pool ?? '', policy: ticket.recording ?? 'on', startedAt, endedAt: null, bytes: 0, file }));
    log.info({ session: ticket.session, recording: id }, 'recording started');
    return { id, rec, startedAt };
  }

  async function writeStats(t: Tunnel): Promise<void> {
    const meter = t.meter;
    if (!meter || !t.readyAt) return;
    const c = t.conn;
    await o.store.sessionStats.put(t.ticket.session, {
      bytesToClient: c.bytesOut, bytesFromClient: c.bytesIn, bandwidthBps: meter.bandwidth(c.bytesOut + c.bytesIn),
      rttMs: meter.rttMs, lastInputAt: meter.lastInputAt, clientAddress: meter.clientAddress, userAgent: meter.userAgent,
      connectedAt: t.readyAt, updatedAt: Date.now(),
    });
  }

  // Live statistics of the open connections, and how far their recordings got.
  let statting = false;
  const stats = setInterval(() => {
    if (statting || !live.size) return;
    statting = true;
    const jobs: Promise<unknown>[] = [];
    for (const t of live) {
      if (t.meter && t.readyAt) jobs.push(writeStats(t));
      if (!t.recording) continue;
      jobs.push(o.store.recordings.update(t.recording.id, { bytes: t.recording.rec.bytes }));
      // A recorded pool does not stream unrecorded: a full or failing disk ends the connection.
      if (t.recording.rec.failed || t.recording.rec.truncated) t.conn.fail(MESSAGES.notRecorded, Status.SERVER_ERROR);
    }
    track(Promise.all(jobs).finally(() => (statting = false)));
  }, STATS_EVERY_MS);
  stats.unref();

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      url = new URL('http://localhost/');
    }
    if (url.pathname !== TUNNEL_PATH) {
      // Not ours; if nobody else takes upgrades, do not leave the socket hanging.
      if (o.server.listenerCount('upgrade') <= 1) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.on('error', () => undefined);
    if (closing) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err: Error) => log.debug({ err: err.message }, 'tunnel websocket error'));
      accept(ws, req, url).catch((err: unknown) => {
        log.error({ err }, 'tunnel failed to open');
        refuse(ws, 'Internal error', Status.SERVER_ERROR);
      });
    });
  }
  o.server.on('upgrade', onUpgrade);

  // Tunnels of sessions logged off meanwhile (helpdesk, timeouts, another replica) are closed.
  let sweeping = false;
  const sweep = setInterval(() => {
    if (sweeping || !live.size) return;
    sweeping = true;
    const ids = [...new Set([...live].map((t) => t.ticket.session))];
    track(
      o.store.tickets
        .states(ids)
        .then((states) => {
          for (const t of live) {
            const st = states.get(t.ticket.session);
            if (st === 'ended' || st === '') t.conn.fail(MESSAGES.loggedOff, Status.SESSION_CLOSED);
          }
        })
        .finally(() => (sweeping = false)),
    );
  }, SWEEP_EVERY_MS);
  sweep.unref();

  log.info({ path: TUNNEL_PATH, guacd: guacdName, builtInGateway: !!gateway }, 'tunnel attached');
  return {
    guacd: 'path' in guacd ? { host: '', port: 0, path: guacd.path } : guacd,
    count: () => live.size,
    async close() {
      if (closing) return;
      closing = true;
      o.server.off('upgrade', onUpgrade);
      clearInterval(sweep);
      clearInterval(stats);
      for (const ws of pending) refuse(ws, MESSAGES.shutdown, Status.UPSTREAM_UNAVAILABLE);
      for (const t of [...live]) t.conn.fail(MESSAGES.shutdown, Status.UPSTREAM_UNAVAILABLE);
      // Let the sessions be marked disconnected (bounded: Redis may be gone).
      const deadline = Date.now() + 3000;
      while (work.size && Date.now() < deadline) await Promise.race([Promise.allSettled([...work]), new Promise((r) => setTimeout(r, 100))]);
      await unsubscribe();
      await new Promise<void>((r) => wss.close(() => r()));
      await gateway?.close();
      log.info('tunnel closed');
    },
  };
}
