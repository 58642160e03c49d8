// A tiny scriptable RFB 3.8 server for tests and the benchmark: records what the client
// sends (keys, pointer, cut text, requests) and answers update requests with what the
// test pushes (Raw or ZRLE rectangles, cursor shapes, cut text).
import net from 'node:net';
import zlib from 'node:zlib';
import { vncAuthResponse } from '../../../server/gateway/vnc-auth.ts';
import { encodeZrleSimple } from '../../../server/gateway/zrle.ts';

export type ClientMessage =
  | { type: 'key'; down: boolean; keysym: number }
  | { type: 'pointer'; mask: number; x: number; y: number }
  | { type: 'cut'; text: string }
  | { type: 'request'; incremental: boolean }
  | { type: 'encodings'; list: number[] }
  | { type: 'pixelformat' }
  | { type: 'setsize'; width: number; height: number };

export type FakeRfbOptions = { width: number; height: number; password?: string; name?: string; version?: '3.3' | '3.7' | '3.8' };

export class FakeRfbConnection {
  readonly messages: ClientMessage[] = [];
  pendingRequests = 0;
  /** The version line the client answered with, e.g. "RFB 003.003". */
  clientVersion = '';
  /** The security type the client chose (3.7/3.8; 3.3 has the server pick). */
  securityType: number | undefined;
  /** Result of VNC Authentication: undefined = not done. */
  authenticated: boolean | undefined;
  private buf = Buffer.alloc(0);
  private ready = false;
  private deflate: zlib.Deflate | undefined;
  private deflated: Buffer[] = [];
  /** Called on every FramebufferUpdateRequest once the handshake is done. */
  onRequest: ((c: FakeRfbConnection) => void) | undefined;

  constructor(
    readonly socket: net.Socket,
    private readonly opts: FakeRfbOptions,
  ) {}

  send(b: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  /** One FramebufferUpdate with a Raw rectangle of RGBX pixels (4 bytes each). */
  sendRaw(x: number, y: number, w: number, h: number, pixels: Buffer): void {
    const head = Buffer.alloc(4 + 12);
    head[0] = 0;
    head.writeUInt16BE(1, 2);
    head.writeUInt16BE(x, 4);
    head.writeUInt16BE(y, 6);
    head.writeUInt16BE(w, 8);
    head.writeUInt16BE(h, 10);
    head.writeInt32BE(0, 12);
    this.pendingRequests = Math.max(0, this.pendingRequests - 1);
    this.send(Buffer.concat([head, pixels]));
  }

  /** One FramebufferUpdate with a ZRLE rectangle (full image `pixels` of width `stride`). */
  sendZrle(x: number, y: number, w: number, h: number, pixels: Buffer, stride: number): void {
    const raw = encodeZrleSimple(pixels, stride, { x, y, w, h });
    const z = (this.deflate ??= zlib.createDeflate({ level: 1 }));
    if (z.listenerCount('data') === 0) z.on('data', (c: Buffer) => this.deflated.push(c));
    z.write(raw);
    z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      const data = Buffer.concat(this.deflated);
      this.deflated = [];
      const head = Buffer.alloc(4 + 12 + 4);
      head.writeUInt16BE(1, 2);
      head.writeUInt16BE(x, 4);
      head.writeUInt16BE(y, 6);
      head.writeUInt16BE(w, 8);
      head.writeUInt16BE(h, 10);
      head.writeInt32BE(16, 12);
      head.writeUInt32BE(data.length, 16);
      this.pendingRequests = Math.max(0, this.pendingRequests - 1);
      this.send(Buffer.concat([head, data]));
    });
  }

  /** One FramebufferUpdate made of prebuilt rectangles (see the *Rect helpers). */
  sendUpdate(rects: Buffer[]): void {
    const head = Buffer.alloc(4);
    head.writeUInt16BE(rects.length, 2);
    this.pendingRequests = Math.max(0, this.pendingRequests - 1);
    this.send(Buffer.concat([head, ...rects]));
  }

  sendCutText(latin1: string): void {
    const b = Buffer.alloc(8);
    b[0] = 3;
    b.writeUInt32BE(Buffer.byteLength(latin1, 'latin1'), 4);
    this.send(Buffer.concat([b, Buffer.from(latin1, 'latin1')]));
  }

  start(): void {
    const s = this.socket;
    const version = this.opts.version ?? '3.8';
    s.write(`RFB 003.00${version.slice(2)}\n`);
    let stage: 'version' | 'security' | 'auth' | 'init' | 'ready' = 'version';
    const challenge = Buffer.alloc(16, 7);
    const step = (): boolean => {
      const b = this.buf;
      if (stage === 'version') {
        if (b.length < 12) return false;
        this.clientVersion = b.subarray(0, 11).toString('latin1');
        this.buf = b.subarray(12);
        if (version === '3.3') {
          const t = Buffer.alloc(4);
          t.writeUInt32BE(this.opts.password ? 2 : 1);
          s.write(t);
          if (this.opts.password) {
            s.write(challenge);
            stage = 'auth';
          } else stage = 'init';
        } else {
          s.write(Buffer.from([1, this.opts.password ? 2 : 1]));
          stage = 'security';
        }
        return true;
      }
      if (stage === 'security') {
        if (b.length < 1) return false;
        this.securityType = b[0];
        this.buf = b.subarray(1);
        if (this.opts.password) {
          s.write(challenge);
          stage = 'auth';
        } else {
          if (version === '3.8') s.write(Buffer.alloc(4)); // 3.7 sends no SecurityResult for None
          stage = 'init';
        }
        return true;
      }
      if (stage === 'auth') {
        if (b.length < 16) return false;
        const ok = vncAuthResponse(this.opts.password!, challenge).equals(b.subarray(0, 16));
        this.authenticated = ok;
        this.buf = b.subarray(16);
        const r = Buffer.alloc(4);
        r.writeUInt32BE(ok ? 0 : 1);
        s.write(r);
        if (!ok) {
          if (version === '3.8') {
            const why = Buffer.from('Authentication failed');
            const l = Buffer.alloc(4);
            l.writeUInt32BE(why.length);
            s.write(Buffer.concat([l, why]));
          }
          s.end();
          return false;
        }
        stage = 'init';
        return true;
      }
      if (stage === 'init') {
        if (b.length < 1) return false;
        this.buf = b.subarray(1);
        const name = Buffer.from(this.opts.name ?? 'fake desktop');
        const init = Buffer.alloc(24);
        init.writeUInt16BE(this.opts.width, 0);
        init.writeUInt16BE(this.opts.height, 2);
        init[4] = 32;
        init[5] = 24;
        init[7] = 1;
        init.writeUInt16BE(255, 8);
        init.writeUInt16BE(255, 10);
        init.writeUInt16BE(255, 12);
        init[14] = 16;
        init[15] = 8;
        init.writeUInt32BE(name.length, 20);
        s.write(Buffer.concat([init, name]));
        stage = 'ready';
        return true;
      }
      return this.clientMessage();
    };
    s.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (step()) {
        /* consume */
      }
    });
    s.on('error', () => undefined);
  }

  private clientMessage(): boolean {
    const b = this.buf;
    if (b.length < 1) return false;
    const t = b[0]!;
    let n: number;
    if (t === 0) {
      n = 20;
      if (b.length < n) return false;
      this.messages.push({ type: 'pixelformat' });
    } else if (t === 2) {
      if (b.length < 4) return false;
      const count = b.readUInt16BE(2);
      n = 4 + 4 * count;
      if (b.length < n) return false;
      const list: number[] = [];
      for (let i = 0; i < count; i++) list.push(b.readInt32BE(4 + 4 * i));
      this.messages.push({ type: 'encodings', list });
    } else if (t === 3) {
      n = 10;
      if (b.length < n) return false;
      this.messages.push({ type: 'request', incremental: b[1] === 1 });
      this.pendingRequests++;
      this.ready = true;
    } else if (t === 4) {
      n = 8;
      if (b.length < n) return false;
      this.messages.push({ type: 'key', down: b[1] === 1, keysym: b.readUInt32BE(4) });
    } else if (t === 5) {
      n = 6;
      if (b.length < n) return false;
      this.messages.push({ type: 'pointer', mask: b[1]!, x: b.readUInt16BE(2), y: b.readUInt16BE(4) });
    } else if (t === 6) {
      if (b.length < 8) return false;
      n = 8 + b.readUInt32BE(4);
      if (b.length < n) return false;
      this.messages.push({ type: 'cut', text: b.subarray(8, n).toString('latin1') });
    } else if (t === 251) {
      if (b.length < 8) return false;
      n = 8 + 16 * b[6]!;
      if (b.length < n) return false;
      this.messages.push({ type: 'setsize', width: b.readUInt16BE(2), height: b.readUInt16BE(4) });
    } else {
      this.socket.destroy();
      return false;
    }
    this.buf = b.subarray(n);
    if (t === 3 && this.ready) this.onRequest?.(this);
    return true;
  }
}

export class FakeRfbServer {
  readonly connections: FakeRfbConnection[] = [];
  private readonly server: net.Server;
  onConnection: ((c: FakeRfbConnection) => void) | undefined;

  private constructor(private readonly opts: FakeRfbOptions) {
    this.server = net.createServer((socket) => {
      const c = new FakeRfbConnection(socket, this.opts);
      this.connections.push(c);
      this.onConnection?.(c);
      c.start();
    });
  }

  static async start(opts: FakeRfbOptions): Promise<FakeRfbServer> {
    const s = new FakeRfbServer(opts);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function rectHeader(x: number, y: number, w: number, h: number, enc: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(x, 0);
  b.writeUInt16BE(y, 2);
  b.writeUInt16BE(w, 4);
  b.writeUInt16BE(h, 6);
  b.writeInt32BE(enc, 8);
  return b;
}

/** Raw rectangle filled with one colour. */
export function solidRawRect(x: number, y: number, w: number, h: number, rgb: [number, number, number]): Buffer {
  const px = Buffer.alloc(w * h * 4);
  for (let i = 0; i < px.length; i += 4) {
    px[i] = rgb[0];
    px[i + 1] = rgb[1];
    px[i + 2] = rgb[2];
  }
  return Buffer.concat([rectHeader(x, y, w, h, 0), px]);
}

/** Raw rectangle from RGBX pixels. */
export function rawRect(x: number, y: number, w: number, h: number, pixels: Buffer): Buffer {
  return Buffer.concat([rectHeader(x, y, w, h, 0), pixels]);
}

export function copyRect(x: number, y: number, w: number, h: number, sx: number, sy: number): Buffer {
  const s = Buffer.alloc(4);
  s.writeUInt16BE(sx, 0);
  s.writeUInt16BE(sy, 2);
  return Buffer.concat([rectHeader(x, y, w, h, 1), s]);
}

/** Cursor pseudo-rectangle: a w×h cursor of one colour, fully opaque. */
export function cursorRect(hotX: number, hotY: number, w: number, h: number, rgb: [number, number, number]): Buffer {
  const px = Buffer.alloc(w * h * 4);
  for (let i = 0; i < px.length; i += 4) {
    px[i] = rgb[0];
    px[i + 1] = rgb[1];
    px[i + 2] = rgb[2];
  }
  const mask = Buffer.alloc(Math.ceil(w / 8) * h, 0xff);
  return Buffer.concat([rectHeader(hotX, hotY, w, h, -239), px, mask]);
}

/** ExtendedDesktopSize pseudo-rectangle with one screen. */
export function extDesktopSizeRect(reason: number, status: number, w: number, h: number): Buffer {
  const body = Buffer.alloc(4 + 16);
  body[0] = 1;
  body.writeUInt32BE(1, 4); // screen id
  body.writeUInt16BE(w, 12);
  body.writeUInt16BE(h, 14);
  return Buffer.concat([rectHeader(reason, status, w, h, -308), body]);
}
