// A decoding Guacamole client for benchmarks and tests: it draws what it receives like
// guacamole-common-js in a browser and only then acknowledges the frame.
//
//   // Straight to a guacd-protocol server (the built-in gateway, or guacd), with a grant:
//   const c = await GuacClient.gateway(gw.endpoint, grant, { mimetypes: ['image/png', 'image/webp'], width: 1280, height: 720 });
//   // Or through the broker's WebSocket tunnel, as the web client does (ticket first, cookie, Origin):
//   const c = await GuacClient.tunnel(brokerUrl, { ticket, cookie });
//
//   await c.frame();              // the next frame: every image decoded and drawn, `sync` acked
//   await c.until(() => c.frames > 10, 5000);
//   c.framebuffer                 // layer 0 as { width, height, data: RGBA Buffer }
//   c.pixel(x, y)                 // [r, g, b, a]
//   c.stats                       // bytes on the wire, frames, drawn pixels, images by type (below)
//   c.close();
//
// What it does with the stream: `img`/`blob`/`end` streams of image/png, image/jpeg and
// image/webp are decoded with sharp (decoding starts at `end`, drawing happens in stream
// order) and composited onto their layer (SRC or OVER; other channel masks are drawn as
// OVER); `rect` + `cfill` fill, `copy` copies between layers (overlap-safe), `size` sizes a
// layer; `sync` is acknowledged once everything before it is drawn (the browser's flow
// control). `error` ends the client (`c.error`). Like guacamole-common-js it sends `nop` every
// 5 s (guacd and the gateway drop a user silent for 15 s) and, over the tunnel, the internal
// `ping` every 500 ms, so idle connections stay open.
//
// `stats.images[kind]` counts images, their encoded bytes and their pixels by kind: 'png',
// 'jpeg', 'webp' (lossy) and 'webp-lossless' (a VP8L bitstream); `lossless(kind)` says which
// kinds are pixel-exact. `drawnPixels` = image + fill + copy pixels. With `draw: false` images
// are counted (count, bytes) but not decoded: for many idle clients.
import net from 'node:net';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { encode, InstructionParser, type Instruction } from '../../server/gateway/protocol.ts';

const require = createRequire(import.meta.url);

export type ImageKind = 'png' | 'jpeg' | 'webp' | 'webp-lossless' | 'other';
export const lossless = (k: ImageKind): boolean => k === 'png' || k === 'webp-lossless';

export type ClientStats = {
  /** Bytes received (WebSocket payloads or TCP bytes). */
  bytesIn: number;
  /** `sync` instructions acknowledged. */
  frames: number;
  /** Frames that drew something (image, fill or copy). */
  drawnFrames: number;
  drawnPixels: number;
  fillPixels: number;
  copyPixels: number;
  images: Record<ImageKind, { count: number; bytes: number; pixels: number }>;
  /** Milliseconds spent waiting for sharp to decode (wall clock, per image, summed). */
  decodeMs: number;
};

export type Layer = { width: number; height: number; data: Buffer };

type Transport = { send(text: string): void; close(): void };

export type GatewayOptions = {
  /** Connection parameters by name (the `args` the server asks for); defaults empty. */
  params?: Record<string, string>;
  /** Offered image mimetypes (the `image` instruction); default png, jpeg, webp. */
  mimetypes?: string[];
  width?: number;
  height?: number;
  timeoutMs?: number;
  /** false: count images but neither decode nor draw them (many idle clients). Default true. */
  draw?: boolean;
};

export type TunnelOptions = {
  ticket: string;
  /** The login's session cookie (`name=value`), or an API key. */
  cookie?: string;
  bearer?: string;
  /** Origin header; default the broker's own. */
  origin?: string;
  /** Query of the tunnel URL (width, height, ...). */
  query?: string;
  path?: string;
  timeoutMs?: number;
  /** false: count images but neither decode nor draw them (many idle clients). Default true. */
  draw?: boolean;
};

const COMP_SRC = 0xc;
const kindOf = (mime: string, data: Buffer): ImageKind => {
  if (mime === 'image/png') return 'png';
  if (mime === 'image/jpeg') return 'jpeg';
  if (mime === 'image/webp') {
    // RIFF....WEBP then the first chunk: VP8L = lossless; VP8X (extended) names its chunks next.
    const head = data.subarray(12, 64).toString('latin1');
    return head.startsWith('VP8L') || (head.startsWith('VP8X') && head.includes('VP8L')) ? 'webp-lossless' : 'webp';
  }
  return 'other';
};

export class GuacClient {
  readonly layers = new Map<number, Layer>();
  readonly stats: ClientStats = {
    bytesIn: 0,
    frames: 0,
    drawnFrames: 0,
    drawnPixels: 0,
    fillPixels: 0,
    copyPixels: 0,
    images: { png: z(), jpeg: z(), webp: z(), 'webp-lossless': z(), other: z() },
    decodeMs: 0,
  };
  /** The `error` instruction that ended the connection, if any. */
  error: Instruction | undefined;
  closed = false;
  /** The connection id (`ready` from the gateway, or the tunnel's UUID). */
  id = '';
  /** Instructions seen by opcode (diagnostics). */
  readonly opcodes = new Map<string, number>();

  private transport!: Transport;
  private readonly parser = new InstructionParser(1 << 22);
  private readonly streams = new Map<string, { layer: number; mask: number; mime: string; x: number; y: number; chunks: string[] }>();
  private readonly path: Array<[number, number, number, number]> = [];
  private queue: Array<() => void | Promise<void>> = [];
  private qi = 0;
  private draining = false;
  private drawnBefore = 0;
  private waiters: Array<() => void> = [];
  private handshake: ((i: Instruction) => boolean) | undefined;
  private pinger: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private draw = true;

  private constructor() {}

  /** Layer 0 (the display). */
  get framebuffer(): Layer {
    return this.layer(0);
  }

  get frames(): number {
    return this.stats.frames;
  }

  pixel(x: number, y: number): [number, number, number, number] {
    const l = this.framebuffer;
    const o = (y * l.width + x) * 4;
    return [l.data[o]!, l.data[o + 1]!, l.data[o + 2]!, l.data[o + 3]!];
  }

  send(opcode: string, ...args: Array<string | number>): void {
    if (!this.closed) this.transport.send(encode(opcode, ...args));
  }

  /** Resolves when `pred()` holds (checked after every instruction batch and drawn frame); rejects on timeout or close. */
  async until(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (this.error) throw new Error(`server error ${this.error.args[1]}: ${this.error.args[0]}`);
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits until the next frame is drawn and acknowledged. */
  async frame(timeoutMs = 10_000): Promise<void> {
    const n = this.stats.frames + 1;
    await this.until(() => this.stats.frames >= n, timeoutMs);
  }

  close(): void {
    this.stopTimers();
    this.closed = true;
    this.transport?.close();
    this.wake();
  }

  /** Connects to a guacd-protocol server and does the handshake; resolves at `ready`. */
  static async gateway(to: { host?: string; port?: number; path?: string } | number, select: string, o: GatewayOptions = {}): Promise<GuacClient> {
    const c = new GuacClient();
    c.draw = o.draw ?? true;
    const opts = typeof to === 'number' ? { host: '127.0.0.1', port: to } : to;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(opts as net.NetConnectOpts, () => resolve(s));
      s.once('error', reject);
    });
    socket.setNoDelay(true);
    c.transport = { send: (t) => socket.write(t), close: () => socket.destroy() };
    socket.on('data', (d: Buffer) => c.receive(d));
    socket.on('error', () => undefined);
    socket.on('close', () => c.onClose());
    const args = c.handshakeStep((i) => i.opcode === 'args');
    c.send('select', select);
    const a = await c.waitHandshake(args, o.timeoutMs);
    c.send('size', o.width ?? 1280, o.height ?? 720, 96);
    c.send('audio');
    c.send('video');
    c.send('image', ...(o.mimetypes ?? ['image/png', 'image/jpeg', 'image/webp']));
    c.send('timezone', 'UTC');
    const ready = c.handshakeStep((i) => i.opcode === 'ready');
    c.send('connect', ...a.args.map((name) => (name.startsWith('VERSION_') ? name : (o.params?.[name] ?? ''))));
    c.id = (await c.waitHandshake(ready, o.timeoutMs)).args[0] ?? '';
    c.startKeepAlive();
    return c;
  }

  /** Opens the broker's WebSocket tunnel as the web client does; resolves once the tunnel is open (its UUID). */
  static async tunnel(base: string, o: TunnelOptions): Promise<GuacClient> {
    const WebSocket = require('ws') as new (url: string, protocols: string, opts: object) => {
      readyState: number;
      on(ev: string, f: (...a: never[]) => void): void;
      send(s: string): void;
      terminate(): void;
    };
    const c = new GuacClient();
    c.draw = o.draw ?? true;
    const headers: Record<string, string> = {};
    if (o.cookie) headers.cookie = o.cookie;
    if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
    const url = `${base.replace(/^http/, 'ws')}${o.path ?? '/api/v1/tunnel'}${o.query ? `?${o.query}` : ''}`;
    const ws = new WebSocket(url, 'guacamole', { headers, origin: o.origin ?? new URL(base).origin, perMessageDeflate: false });
    c.transport = {
      send: (t) => ws.readyState === 1 && ws.send(t),
      close: () => ws.terminate(),
    };
    // The tunnel's UUID comes as the internal instruction `0.,36.<uuid>;`.
    const opened = c.handshakeStep((i) => i.opcode === '' && i.args.length === 1 && i.args[0] !== 'ping');
    ws.on('open', () => {
      ws.send(encode('', 'ticket', o.ticket));
      c.pinger = setInterval(() => c.transport.send(encode('', 'ping', Date.now())), 500);
    });
    ws.on('message', (d: Buffer) => c.receive(d));
    ws.on('error', () => undefined);
    ws.on('close', () => c.onClose());
    c.id = (await c.waitHandshake(opened, o.timeoutMs)).args[0] ?? '';
    c.startKeepAlive();
    return c;
  }

  // ---- internals ----

  private handshakeStep(pred: (i: Instruction) => boolean): { pred: (i: Instruction) => boolean; got?: Instruction } {
    const step: { pred: (i: Instruction) => boolean; got?: Instruction } = { pred };
    this.handshake = (i) => {
      if (!pred(i)) return false;
      step.got = i;
      this.handshake = undefined;
      return true;
    };
    return step;
  }

  private async waitHandshake(step: { got?: Instruction }, timeoutMs = 15_000): Promise<Instruction> {
    await this.until(() => step.got !== undefined, timeoutMs).catch((e: Error) => {
      this.close();
      throw e;
    });
    return step.got!;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private stopTimers(): void {
    if (this.pinger) clearInterval(this.pinger);
    if (this.keepAlive) clearInterval(this.keepAlive);
  }

  private startKeepAlive(): void {
    this.keepAlive = setInterval(() => this.send('nop'), 5000);
  }

  private onClose(): void {
    this.stopTimers();
    this.closed = true;
    this.wake();
  }

  private receive(d: Buffer): void {
    this.stats.bytesIn += d.length;
    let list: Instruction[];
    try {
      list = this.parser.push(d);
    } catch (e) {
      this.error = { opcode: 'error', args: [`client parser: ${(e as Error).message}`, '0'] };
      this.close();
      return;
    }
    for (const ins of list) this.instruction(ins);
    this.wake();
  }

  private instruction(ins: Instruction): void {
    this.opcodes.set(ins.opcode, (this.opcodes.get(ins.opcode) ?? 0) + 1);
    if (this.handshake?.(ins)) return;
    const a = ins.args;
    const n = (k: number) => Number(a[k]);
    switch (ins.opcode) {
      case 'img':
        this.streams.set(a[0]!, { mask: n(1), layer: n(2), mime: a[3]!, x: n(4), y: n(5), chunks: [] });
        break;
      case 'blob':
        this.streams.get(a[0]!)?.chunks.push(a[1]!);
        break;
      case 'end': {
        const s = this.streams.get(a[0]!);
        if (!s) break;
        this.streams.delete(a[0]!);
        const data = Buffer.from(s.chunks.join(''), 'base64');
        const kind = kindOf(s.mime, data);
        if (!this.draw) {
          this.stats.images[kind].count++;
          this.stats.images[kind].bytes += data.length;
          break;
        }
        const t0 = performance.now();
        const decoded = sharp(data)
          .ensureAlpha()
          .raw()
          .toBuffer({ resolveWithObject: true })
          .then((r) => {
            this.stats.decodeMs += performance.now() - t0;
            return r;
          });
        decoded.catch(() => undefined);
        this.enqueue(async () => {
          const { data: px, info } = await decoded;
          const st = this.stats.images[kind];
          st.count++;
          st.bytes += data.length;
          st.pixels += info.width * info.height;
          this.stats.drawnPixels += info.width * info.height;
          this.drawImage(s.layer, s.mask, s.x, s.y, info.width, info.height, px);
        });
        break;
      }
      case 'rect':
        this.enqueue(() => void this.path.push([n(1), n(2), n(3), n(4)]));
        break;
      case 'cfill':
        this.enqueue(() => this.fill(n(1), [n(2), n(3), n(4), n(5)]));
        break;
      case 'copy':
        this.enqueue(() => this.copy(n(0), n(1), n(2), n(3), n(4), n(6), n(7), n(8)));
        break;
      case 'size':
        this.enqueue(() => this.resize(n(0), n(1), n(2)));
        break;
      case 'sync': {
        const ts = a[0]!;
        this.enqueue(() => {
          this.send('sync', ts);
          this.stats.frames++;
          if (this.stats.drawnPixels > this.drawnBefore) this.stats.drawnFrames++;
          this.drawnBefore = this.stats.drawnPixels;
          this.wake();
        });
        break;
      }
      case 'error':
        this.error = ins;
        this.close();
        break;
      case 'disconnect':
        this.close();
        break;
      default:
        break; // nop, name, cursor, mouse, internal tunnel instructions, ...
    }
  }

  private enqueue(op: () => void | Promise<void>): void {
    this.queue.push(op);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.qi < this.queue.length) {
        const op = this.queue[this.qi++]!;
        const r = op();
        if (r) await r;
        if (this.qi > 1024) {
          this.queue = this.queue.slice(this.qi);
          this.qi = 0;
        }
      }
      this.queue = [];
      this.qi = 0;
    } catch (e) {
      this.error = { opcode: 'error', args: [`client draw: ${(e as Error).message}`, '0'] };
      this.close();
    } finally {
      this.draining = false;
    }
  }

  private layer(i: number): Layer {
    let l = this.layers.get(i);
    if (!l) {
      l = { width: 0, height: 0, data: Buffer.alloc(0) };
      this.layers.set(i, l);
    }
    return l;
  }

  private resize(i: number, w: number, h: number): void {
    const l = this.layer(i);
    if (l.width === w && l.height === h) return;
    const data = Buffer.alloc(w * h * 4);
    // Keep what fits, as a canvas resize in guacamole-common-js does.
    for (let y = 0; y < Math.min(h, l.height); y++) {
      l.data.copy(data, y * w * 4, y * l.width * 4, y * l.width * 4 + Math.min(w, l.width) * 4);
    }
    this.layers.set(i, { width: w, height: h, data });
  }

  /** Clips (x, y, w, h) to the layer; undefined if nothing is left. */
  private clip(l: Layer, x: number, y: number, w: number, h: number): [number, number, number, number] | undefined {
    const x0 = Math.max(0, x);
    const y0 = Math.max(0, y);
    const x1 = Math.min(l.width, x + w);
    const y1 = Math.min(l.height, y + h);
    return x1 > x0 && y1 > y0 ? [x0, y0, x1 - x0, y1 - y0] : undefined;
  }

  private drawImage(layer: number, mask: number, x: number, y: number, w: number, h: number, px: Buffer): void {
    const l = this.layer(layer);
    const c = this.clip(l, x, y, w, h);
    if (!c) return;
    const [cx, cy, cw, ch] = c;
    let opaque = mask === COMP_SRC;
    if (!opaque) {
      opaque = true;
      for (let i = 3; i < px.length; i += 4) {
        if (px[i] !== 255) {
          opaque = false;
          break;
        }
      }
    }
    for (let row = 0; row < ch; row++) {
      const src = ((cy - y + row) * w + (cx - x)) * 4;
      const dst = ((cy + row) * l.width + cx) * 4;
      if (opaque) {
        px.copy(l.data, dst, src, src + cw * 4);
        continue;
      }
      for (let i = 0; i < cw * 4; i += 4) {
        const a = px[src + i + 3]!;
        for (let k = 0; k < 3; k++) {
          l.data[dst + i + k] = Math.round((px[src + i + k]! * a + l.data[dst + i + k]! * (255 - a)) / 255);
        }
        l.data[dst + i + 3] = Math.max(a, l.data[dst + i + 3]!);
      }
    }
  }

  private fill(layer: number, rgba: [number, number, number, number]): void {
    const l = this.layer(layer);
    const rects = this.path.splice(0);
    const [r, g, b, a] = rgba;
    for (const [x, y, w, h] of rects) {
      const c = this.clip(l, x, y, w, h);
      if (!c) continue;
      const [cx, cy, cw, ch] = c;
      this.stats.fillPixels += cw * ch;
      this.stats.drawnPixels += cw * ch;
      const rowPx = Buffer.alloc(cw * 4);
      for (let i = 0; i < cw * 4; i += 4) [rowPx[i], rowPx[i + 1], rowPx[i + 2], rowPx[i + 3]] = [r, g, b, a];
      for (let row = 0; row < ch; row++) rowPx.copy(l.data, ((cy + row) * l.width + cx) * 4);
    }
  }

  private copy(srcLayer: number, sx: number, sy: number, w: number, h: number, dstLayer: number, dx: number, dy: number): void {
    const s = this.layer(srcLayer);
    const d = this.layer(dstLayer);
    const c = this.clip(s, sx, sy, w, h);
    if (!c) return;
    const [cx, cy, cw, ch] = c;
    // Copy through a temporary buffer: source and destination may overlap (scrolling).
    const tmp = Buffer.allocUnsafe(cw * ch * 4);
    for (let row = 0; row < ch; row++) s.data.copy(tmp, row * cw * 4, ((cy + row) * s.width + cx) * 4, ((cy + row) * s.width + cx + cw) * 4);
    const ox = dx + (cx - sx);
    const oy = dy + (cy - sy);
    const dc = this.clip(d, ox, oy, cw, ch);
    if (!dc) return;
    const [ex, ey, ew, eh] = dc;
    for (let row = 0; row < eh; row++) {
      const srcOff = ((ey - oy + row) * cw + (ex - ox)) * 4;
      tmp.copy(d.data, ((ey + row) * d.width + ex) * 4, srcOff, srcOff + ew * 4);
    }
    this.stats.copyPixels += ew * eh;
    this.stats.drawnPixels += ew * eh;
  }
}

function z() {
  return { count: 0, bytes: 0, pixels: 0 };
}
