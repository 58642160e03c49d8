// One Guacamole client on TCP (guacamole-lite, or Guacamole's web app): guacd's side of the
// handshake (`select` → `args`, then size/audio/video/image/timezone/name, `connect` →
// `ready`), then input, `sync` acknowledgements, clipboard streams and keep-alive `nop`s.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  CONNECTED_MAX_INSTRUCTION,
  encode,
  GuacError,
  HANDSHAKE_MAX_INSTRUCTION,
  InstructionParser,
  Status,
  type Instruction,
} from './protocol.ts';
import type { Grant } from './grant.ts';
import { parseConnectArgs, PROTOCOL_VERSION, VNC_ARGS } from './settings.ts';
import type { SessionUser, VncSession } from './vnc.session.ts';

export type ConnectionTimings = {
  /** The handshake must finish within this (guacd: 15 s). */
  handshakeTimeoutMs: number;
  /** A user silent this long is dropped with CLIENT_TIMEOUT (guacd: 15 s). */
  idleTimeoutMs: number;
  /** A `nop` goes out when nothing else was written for this long (guacd: 5 s). */
  keepAliveMs: number;
};

export const DEFAULT_TIMINGS: ConnectionTimings = { handshakeTimeoutMs: 15_000, idleTimeoutMs: 15_000, keepAliveMs: 5_000 };

export interface SessionRegistry {
  /** The grant a `select` value is, taken (it works once); undefined if it is none. */
  admit(token: string): Grant | undefined;
  create(settings: ReturnType<typeof parseConnectArgs>): VncSession;
  find(id: string): VncSession | undefined;
}

/** The one answer to a `select` without a valid grant, whatever it selects. */
export const NO_GRANT = 'This gateway serves only connections the broker granted';

const MAX_HANDSHAKE_INSTRUCTIONS = 64;
const MAX_CLIPBOARD_BYTES = 256 * 1024;
const MAX_OPEN_STREAMS = 8;
/** A user whose socket holds this much unsent data gets no new frames until it drains. */
const SOCKET_BACKLOG_LIMIT = 8 * 1024 * 1024;
/** A user whose socket holds this much unsent data is dropped. */
const SOCKET_HARD_LIMIT = 32 * 1024 * 1024;

type InboundStream = { chunks: Buffer[]; size: number };

export class GuacConnection implements SessionUser {
  readonly id: string;
  readOnly = false;
  /** Mimetypes of the handshake's `image` instruction (PNG is always allowed, like guacd). */
  imageTypes: ReadonlySet<string> = new Set();
  private readonly parser = new InstructionParser(HANDSHAKE_MAX_INSTRUCTION);
  private state: 'select' | 'handshake' | 'connected' | 'closed' = 'select';
  private grant: Grant | undefined;
  private session: VncSession | undefined;
  private handshakeCount = 0;
  private owedSync: number | undefined;
  private owedSince = 0;
  private lastRead = Date.now();
  private lastWrite = Date.now();
  private readonly timer: NodeJS.Timeout;
  private readonly streams = new Map<string, InboundStream>();
  private log: Logger;

  constructor(
    private readonly socket: Socket,
    private readonly registry: SessionRegistry,
    logger: Logger,
    private readonly timings: ConnectionTimings,
    connectionNumber: number,
  ) {
    this.id = `u${connectionNumber}`;
    this.log = logger.child({ user: this.id });
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.log.debug({ err: e.message }, 'client socket error'));
    socket.on('close', () => this.closed());
    socket.on('drain', () => this.session?.userReady());
    const started = Date.now();
    this.timer = setInterval(() => this.tick(started), Math.min(1000, timings.keepAliveMs));
  }

  private tick(started: number): void {
    const now = Date.now();
    if (this.state !== 'connected') {
      if (now - started > this.timings.handshakeTimeoutMs) this.abort('Handshake timed out', Status.CLIENT_TIMEOUT);
      return;
    }
    // Silent, or alive but not answering frames (which would stall the other users).
    if (now - this.lastRead > this.timings.idleTimeoutMs || (this.owedSync !== undefined && now - this.owedSince > this.timings.idleTimeoutMs)) {
      return this.abort('User is not responding.', Status.CLIENT_TIMEOUT);
    }
    if (now - this.lastWrite >= this.timings.keepAliveMs) this.send(encode('nop'));
  }

  private onData(d: Buffer): void {
    if (this.state === 'closed') return;
    this.lastRead = Date.now();
    try {
      for (const ins of this.parser.push(d)) {
        if ((this.state as string) === 'closed') return;
        this.handle(ins);
      }
    } catch (e) {
      if (e instanceof GuacError) this.abort(e.message, e.status);
      else {
        this.log.error({ err: e }, 'error handling client instruction');
        this.abort('Internal error', Status.SERVER_ERROR);
      }
    }
  }

  private handle(ins: Instruction): void {
    if (this.state === 'select') return this.select(ins);
    if (this.state === 'handshake') return this.handshake(ins);
    this.connected(ins);
  }

  private select(ins: Instruction): void {
    if (ins.opcode !== 'select' || ins.args.length !== 1) {
      throw new GuacError('Expected "select" as the first instruction', Status.CLIENT_BAD_REQUEST);
    }
    // Only a grant gets in. A protocol name, a connection id or anything else gets the same
    // answer before anything is looked up or contacted: no oracle for ports or connections.
    const grant = this.registry.admit(ins.args[0]!);
    if (!grant) throw new GuacError(NO_GRANT, Status.CLIENT_FORBIDDEN);
    if ('join' in grant && !this.registry.find(grant.join)) throw new GuacError('No such connection', Status.RESOURCE_NOT_FOUND);
    this.grant = grant;
    this.state = 'handshake';
    this.send(encode('args', PROTOCOL_VERSION, ...VNC_ARGS));
  }

  private handshake(ins: Instruction): void {
    if (++this.handshakeCount > MAX_HANDSHAKE_INSTRUCTIONS) {
      throw new GuacError('Too many handshake instructions', Status.CLIENT_BAD_REQUEST);
    }
    // `image` says which image types the client decodes; size/audio/video/timezone/name only
    // inform us (VNC sizes come from the server).
    if (ins.opcode === 'image') this.imageTypes = new Set(ins.args.slice(0, 16));
    if (ins.opcode !== 'connect') return;
    // Endpoint, join target and read-only come from the grant, never from `connect`.
    const g = this.grant!;
    this.readOnly = g.readOnly;
    if ('join' in g) {
      const s = this.registry.find(g.join);
      if (!s) throw new GuacError('No such connection', Status.RESOURCE_NOT_FOUND);
      this.session = s;
    } else {
      const settings = parseConnectArgs(ins.args, g);
      this.session = this.registry.create(settings);
      for (const w of settings.warnings) this.session.log.warn(w);
    }
    this.log = this.session.log.child({ user: this.id });
    this.state = 'connected';
    this.parser.maxInstruction = CONNECTED_MAX_INSTRUCTION;
    this.send(encode('ready', this.session.id));
    this.log.info({ readOnly: this.readOnly, joined: this.session.userCount > 0 }, 'user connected');
    const first = this.session.userCount === 0;
    this.session.addUser(this);
    if (first) {
      const session = this.session;
      session.start().catch((e: unknown) => {
        session.log.error({ err: e }, 'VNC session crashed');
        session.end(new GuacError('Internal error', Status.SERVER_ERROR));
      });
    }
  }

  private connected(ins: Instruction): void {
    const s = this.session!;
    const a = ins.args;
    const int = (i: number) => {
      const n = Number.parseInt(a[i] ?? '', 10);
      return Number.isFinite(n) ? n : 0;
    };
    switch (ins.opcode) {
      case 'sync': {
        if (this.owedSync !== undefined && int(0) >= this.owedSync) {
          this.owedSync = undefined;
          s.userReady();
        }
        return;
      }
      case 'mouse':
        return s.mouse(this, int(0), int(1), int(2));
      case 'key':
        return s.key(this, int(0), a[1] === '1');
      case 'size':
        return s.resize(this, int(0), int(1));
      case 'clipboard':
        return this.clipboardStart(a[0] ?? '', a[1] ?? '');
      case 'blob':
        return this.blob(a[0] ?? '', a[1] ?? '');
      case 'end':
        return this.streamEnd(a[0] ?? '');
      case 'disconnect':
        this.log.info('user disconnected');
        return this.close();
      default:
        return; // nop, ack and anything we do not implement are ignored, like guacd
    }
  }

  private clipboardStart(stream: string, mimetype: string): void {
    if (this.readOnly || this.session!.settings.disablePaste || !mimetype.startsWith('text/')) {
      this.send(encode('ack', stream, 'Clipboard is read-only or unsupported', Status.UNSUPPORTED));
      return;
    }
    if (this.streams.size >= MAX_OPEN_STREAMS) throw new GuacError('Too many open streams', Status.CLIENT_TOO_MANY);
    this.streams.set(stream, { chunks: [], size: 0 });
    this.send(encode('ack', stream, 'OK', Status.SUCCESS));
  }

  private blob(stream: string, data: string): void {
    const s = this.streams.get(stream);
    if (!s) return;
    const bytes = Buffer.from(data, 'base64');
    if (s.size + bytes.length <= MAX_CLIPBOARD_BYTES) {
      s.chunks.push(bytes);
      s.size += bytes.length;
    }
    this.send(encode('ack', stream, 'OK', Status.SUCCESS));
  }

  private streamEnd(stream: string): void {
    const s = this.streams.get(stream);
    if (!s) return;
    this.streams.delete(stream);
    this.session!.clipboardFromUser(this, Buffer.concat(s.chunks).toString('utf8'));
  }

  // ---- SessionUser ----

  send(data: string | Buffer): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    if (this.socket.writableLength > SOCKET_HARD_LIMIT) {
      // The client stopped reading; never let its backlog grow without bound.
      this.log.warn({ backlog: this.socket.writableLength }, 'client is not reading; dropping it');
      this.socket.destroy();
      this.closed();
      return;
    }
    this.socket.write(data);
    this.lastWrite = Date.now();
  }

  blocksFrames(): boolean {
    return this.owedSync !== undefined || this.socket.writableLength > SOCKET_BACKLOG_LIMIT;
  }

  sendFrame(data: Buffer, ts: number): void {
    this.owedSync = ts;
    this.owedSince = Date.now();
    this.send(data);
  }

  abort(message: string, status: number): void {
    if (this.state === 'closed') return;
    if (status !== Status.SUCCESS) {
      this.log.info({ status: `0x${status.toString(16).padStart(4, '0')}`, reason: message }, 'closing with error');
      this.send(encode('error', message, status));
    }
    this.send(encode('disconnect'));
    this.close();
  }

  pauseInput(): void {
    this.socket.pause();
  }

  resumeInput(): void {
    this.socket.resume();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.timer);
    this.socket.end();
    // Do not wait forever for a peer that does not read.
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.closed();
  }

  private closed(): void {
    this.state = 'closed';
    clearInterval(this.timer);
    const s = this.session;
    this.session = undefined;
    s?.removeUser(this);
  }
}
