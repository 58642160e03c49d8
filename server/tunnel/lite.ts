// guacamole-lite 1.2.0 as the tunnel library, minus its defects. Its ClientConnection (one
// browser WebSocket relayed to one guacd connection through its GuacdClient) is used as it
// is, subclassed where it goes wrong:
// - settings come already resolved (our ticket), never through its token decryption, which
//   decodes as ASCII (non-ASCII passwords broken) and, in its Server, keeps going after a bad
//   token and throws in an async listener (unhandled rejection);
// - the browser's internal `ping` is answered (Guacamole's own tunnel does; guacamole-lite
//   forwards it to guacd and idle desktops show "unstable");
// - every error carries a numeric Guacamole status, in an `error` instruction and as the
//   WebSocket close reason (guacamole-common-js parses both as numbers);
// - guacd's bytes are decoded as a UTF-8 stream (a character split between two TCP chunks
//   is not mangled), and malformed guacd data closes that tunnel instead of throwing;
// - client input is parsed (bounded) before it is relayed; read-only users' input is dropped;
// - guacd may be a unix socket, and the built-in gateway is opened with the broker's grant
//   (as the `select` value, where guacamole-lite puts a join id); the gateway's connection id
//   then stays in the broker: the browser gets a tunnel UUID instead, as from Guacamole's servlet.
// Its Server class is not used: it installs SIGTERM/SIGINT handlers and opens its own
// WebSocket server. Values `false`/`0` survive its `|| null` because every setting we give it
// is a string (see settings.ts).
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GuacdEndpoint } from '../gateway/index.ts';
import { CONNECTED_MAX_INSTRUCTION, encode, GuacError, InstructionParser, Status, type Instruction } from '../gateway/protocol.ts';

const require = createRequire(import.meta.url);

export interface WsSocket extends EventEmitter {
  readonly readyState: number;
  readonly OPEN: number;
  readonly bufferedAmount: number;
  send(data: string, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export interface WsServer {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, cb: (ws: WsSocket) => void): void;
  close(cb?: () => void): void;
}

export const WebSocketServer = (require('ws') as { WebSocketServer: new (o: Record<string, unknown>) => WsServer }).WebSocketServer;

interface LiteGuacdClient extends EventEmitter {
  state: number;
  readonly STATE_OPENING: number;
  sendBuffer: string;
  guacdConnection: Socket;
  processReceivedData(data: string): void;
  send(data: string, afterOpened?: boolean): void;
}

interface LiteClientConnection extends EventEmitter {
  state: number;
  readonly STATE_OPEN: number;
  readonly STATE_CLOSING: number;
  readonly STATE_CLOSED: number;
  readonly connectionId: number;
  readonly webSocket: WsSocket;
  query: Record<string, unknown>;
  lastActivity: number;
  guacdClient?: LiteGuacdClient;
  guacamoleConnectionId?: string;
  connectionSelector: string;
  /** GuacdClient calls net.connect(port, host): a non-numeric `port` string is a unix socket path. */
  connect(guacd: GuacdEndpoint | { host: undefined; port: string }): void;
  close(error?: Error): void;
  send(message: string): void;
  sendMessageToGuacd(message: Buffer | string): void;
  sendErrorToClient(message: string, code?: string): void;
  decryptToken(): unknown;
}

type LiteCtor = new (options: object, id: number, ws: WsSocket, query: Record<string, unknown>, callbacks: object) => LiteClientConnection;
const ClientConnection = require('guacamole-lite/lib/ClientConnection.js') as LiteCtor;

/** guacamole-lite's own error names → Guacamole status codes. */
const LITE_CODES: Record<string, number> = {
  SERVICE_UNAVAILABLE: Status.UPSTREAM_NOT_FOUND,
  SERVICE_NOT_FOUND: Status.UPSTREAM_NOT_FOUND,
  CONNECTION_TIMEOUT: Status.UPSTREAM_TIMEOUT,
  CONNECTION_RESET: Status.UPSTREAM_ERROR,
  INACTIVITY_TIMEOUT: Status.CLIENT_TIMEOUT,
  HANDSHAKE_ERROR: Status.UPSTREAM_ERROR,
  INVALID_TOKEN: Status.CLIENT_UNAUTHORIZED,
  CONFIG_ERROR: Status.SERVER_ERROR,
};

/** WebSocket close code for a Guacamole status (the reason carries the status itself). */
export function wsCloseCode(status: number): number {
  if (status === Status.SUCCESS) return 1000;
  if (status === Status.UPSTREAM_UNAVAILABLE || status === Status.SERVER_BUSY) return 1013;
  if (status >= 0x0300 && status < 0x0400) return 1008;
  return 1011;
}

/** Ends a WebSocket that never reached guacd: `error` instruction, then close with the status. */
export function refuse(ws: WsSocket, message: string, status: number): void {
  if (ws.readyState !== ws.OPEN) return;
  ws.send(encode('error', message, status), () => undefined);
  ws.close(wsCloseCode(status), String(status));
  // Do not keep a socket whose peer never answers the close.
  setTimeout(() => ws.terminate(), 2000).unref();
}

/** Before guacd says `ready`, at most this much client input is held (guacamole-lite: unbounded). */
const PREOPEN_LIMIT = 64 * 1024;
const INPUT = new Set(['key', 'mouse', 'clipboard', 'touch']);
/** What a read-only (shadow) user may not send. */
const WRITES = new Set(['key', 'mouse', 'touch', 'size', 'clipboard', 'blob', 'end', 'file', 'pipe', 'put', 'argv']);

export interface TunnelOptions {
  /** Milliseconds without any client message before the tunnel is closed. */
  maxInactivityMs: number;
  log: { debug(msg: string): void; warn(msg: string): void };
}

/** One browser tunnel: guacamole-lite's ClientConnection with the fixes above. */
export class TunnelConnection extends ClientConnection {
  bytesIn = 0;
  bytesOut = 0;
  readOnly = false;
  onInput: (opcode: string) => void = () => undefined;
  /** Sees every message relayed to the browser (recording, sync round trips); set before connect(). */
  onToClient: ((message: string) => void) | undefined;
  /** The browser acknowledged a frame (`sync` timestamp). */
  onClientSync: ((timestamp: string | undefined) => void) | undefined;
  private parser: InstructionParser | undefined;
  private status: { code: number; message: string } | undefined;

  constructor(id: number, ws: WsSocket, connection: Record<string, unknown>, query: Record<string, string | string[]>, o: TunnelOptions) {
    const size = { width: 1024, height: 768, dpi: 96, audio: [], video: null, image: ['image/png', 'image/jpeg'], timezone: null };
    const allowed = ['width', 'height', 'dpi', 'timezone', 'image', 'audio'];
    super(
      {
        maxInactivityTime: o.maxInactivityMs,
        // VERBOSE at most: guacamole-lite's DEBUG level logs every instruction, passwords included.
        log: { level: 30, stdLog: (...a: unknown[]) => o.log.debug(a.join(' ')), errorLog: (...a: unknown[]) => o.log.warn(a.map((x) => (x instanceof Error ? x.message : String(x))).join(' ')) },
        crypt: { cypher: 'AES-256-GCM', key: '' },
        connectionDefaultSettings: { vnc: size, rdp: size, join: size },
        allowedUnencryptedConnectionSettings: { vnc: allowed, rdp: allowed, join: allowed },
      },
      id,
      ws,
      { ...query, token: { connection } },
      { processConnectionSettings: (s: unknown, cb: (err: Error | undefined, s: unknown) => void) => cb(undefined, s) },
    );
  }

  /** The settings are ours already (see the constructor); nothing to decrypt. */
  override decryptToken(): unknown {
    const s = this.query.token;
    delete this.query.token;
    return s;
  }

  /** The browser's tunnel UUID, relayed instead of the gateway's connection id (grant connections). */
  private tunnelUuid: string | undefined;

  /** Opens guacd (TCP or unix socket); `grant`: the built-in gateway's admission for this connection. */
  override connect(guacd: GuacdEndpoint, grant?: string): void {
    if (grant) {
      this.connectionSelector = grant;
      this.tunnelUuid = randomUUID();
    }
    super.connect('path' in guacd ? { host: undefined, port: guacd.path } : guacd);
    const g = this.guacdClient;
    if (!g) return;
    const sock = g.guacdConnection;
    sock.setEncoding('utf8');
    sock.removeAllListeners('data');
    sock.on('data', (text: string) => {
      try {
        g.processReceivedData(text);
      } catch {
        this.fail('guacd sent malformed data', Status.UPSTREAM_ERROR);
      }
    });
  }

  override sendMessageToGuacd(message: Buffer | string): void {
    if (this.state !== this.STATE_OPEN) return;
    this.lastActivity = Date.now();
    const text = typeof message === 'string' ? message : message.toString('utf8');
    this.bytesIn += Buffer.byteLength(text);
    let instructions: Instruction[];
    try {
      this.parser ??= new InstructionParser(CONNECTED_MAX_INSTRUCTION);
      instructions = this.parser.push(text);
    } catch (e) {
      this.fail(e instanceof GuacError ? e.message : 'Malformed instruction', e instanceof GuacError ? e.status : Status.CLIENT_BAD_REQUEST);
      return;
    }
    let out = '';
    for (const ins of instructions) {
      if (ins.opcode === '') {
        // The tunnel's own instructions: answer keep-alive pings, never relay them to guacd.
        if (ins.args[0] === 'ping') this.send(encode('', ...ins.args));
        continue;
      }
      if (ins.opcode === 'sync') this.onClientSync?.(ins.args[0]);
      if (this.readOnly && WRITES.has(ins.opcode)) continue;
      if (INPUT.has(ins.opcode)) this.onInput(ins.opcode);
      out += encode(ins.opcode, ...ins.args);
    }
    const g = this.guacdClient;
    if (!out || !g) return;
    if (g.state === g.STATE_OPENING && g.sendBuffer.length + out.length > PREOPEN_LIMIT) {
      this.fail('Too much input before the desktop answered', Status.CLIENT_OVERRUN);
      return;
    }
    g.send(out, true);
  }

  override send(message: string): void {
    // guacamole-lite relays `ready`'s connection id as the first internal instruction;
    // guacamole-common-js only needs some id there (it is the tunnel's UUID to it).
    if (this.tunnelUuid && this.guacamoleConnectionId && message === encode('', this.guacamoleConnectionId)) {
      message = encode('', this.tunnelUuid);
      this.tunnelUuid = undefined;
    }
    this.bytesOut += Buffer.byteLength(message);
    this.onToClient?.(message);
    super.send(message);
  }

  override sendErrorToClient(message: string, code = 'CONNECTION_ERROR'): void {
    this.status ??= { code: LITE_CODES[code] ?? Status.SERVER_ERROR, message };
    this.send(encode('error', message, this.status.code));
  }

  /** Ends the tunnel with a Guacamole status the browser can show. */
  fail(message: string, code: number): void {
    if (this.state !== this.STATE_OPEN) return;
    this.status = { code, message };
    this.send(encode('error', message, code));
    this.close(code === Status.SUCCESS ? undefined : new Error(message));
  }

  override close(error?: Error): void {
    if (this.state === this.STATE_CLOSED || this.state === this.STATE_CLOSING) return;
    const ws = this.webSocket;
    if (!this.status && error) {
      // guacamole-lite's own reasons (guacd or the browser silent, guacd gone).
      const m = error.message;
      const code = m.includes('inactivity') ? Status.CLIENT_TIMEOUT : m.includes('guacd was inactive') ? Status.UPSTREAM_TIMEOUT : Status.UPSTREAM_ERROR;
      this.status = { code, message: m.includes('inactivity') ? 'The browser stopped responding' : 'The desktop connection was lost' };
      if (ws.readyState === ws.OPEN) super.send(encode('error', this.status.message, code));
    }
    const code = this.status?.code ?? Status.SUCCESS;
    if (ws.readyState === ws.OPEN) {
      ws.close(wsCloseCode(code), String(code));
      setTimeout(() => ws.terminate(), 2000).unref();
    }
    super.close(error);
  }

  /** The status the tunnel ended (or will end) with. */
  get endStatus(): number {
    return this.status?.code ?? Status.SUCCESS;
  }
}
