// Our RFB (VNC) client: version 3.3/3.7/3.8 handshake, None and VNC Authentication,
// ServerInit, 32 bpp true colour, Raw/CopyRect/ZRLE, DesktopSize/ExtendedDesktopSize,
// Cursor and LastRect pseudo-encodings, and clipboard text. It decodes into a Framebuffer
// and reports changes to an RfbSink; it never talks Guacamole.
import net from 'node:net';
import zlib from 'node:zlib';
import { ByteReader, ReaderClosedError } from './byte-reader.ts';
import { Framebuffer, MAX_SIDE, type Rect } from './framebuffer.ts';
import { GuacError, Status, type StatusCode } from './protocol.ts';
import { vncAuthResponse } from './vnc-auth.ts';
import { decodeZrle } from './zrle.ts';

export const Encoding = {
  Raw: 0,
  CopyRect: 1,
  Tight: 7,
  Hextile: 5,
  ZRLE: 16,
  Cursor: -239,
  DesktopSize: -223,
  LastRect: -224,
  ExtendedDesktopSize: -308,
} as const;

/** What the RFB client reports; the session turns it into Guacamole drawing. */
export interface RfbSink {
  resized(width: number, height: number): void;
  damaged(r: Rect): void;
  copied(sx: number, sy: number, r: Rect): void;
  cursor(hotX: number, hotY: number, w: number, h: number, rgba: Buffer): void;
  clipboard(latin1: Buffer): void;
  updateDone(): void;
}

export type RfbConnectOptions = {
  host: string;
  port: number;
  password?: string;
  encodings: number[];
  timeoutMs?: number;
  /** false: offer ZRLE to a server on loopback too (tests of ZRLE with a real server). Default true. */
  loopbackRaw?: boolean;
};

const MAX_CUT_TEXT = 256 * 1024; // guacd's GUAC_VNC_CLIPBOARD_MAX_LENGTH
const MAX_ZRLE_BYTES = 64 * 1024 * 1024;
const MAX_CURSOR = 512;

/** True for 127.0.0.0/8 and ::1 (also IPv4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

/**
 * The encodings to ask for. A VNC server on this machine gets no ZRLE: over loopback bytes
 * are free, and ZRLE costs CPU at both ends (the server compresses each rectangle, we
 * inflate and decode it: about half the gateway's CPU per megapixel of photo-like content,
 * and Xvnc could not keep up with 30 full-screen photo frames per second). Servers such as
 * TigerVNC pick ZRLE whenever it is offered, whatever the order, so it is left out. Remote
 * servers get the list as configured (ZRLE first by default: bandwidth matters there).
 */
export function preferredEncodings(configured: number[], remoteAddress: string | undefined): number[] {
  if (!isLoopback(remoteAddress) || !configured.includes(Encoding.Raw)) return configured;
  return configured.filter((e) => e !== Encoding.ZRLE);
}

function fail(message: string, status: StatusCode = Status.UPSTREAM_ERROR): never {
  throw new GuacError(message, status);
}

export class RfbClient {
  fb!: Framebuffer;
  name = '';
  supportsResize = false;
  /** Rectangles received per encoding number (diagnostics and tests). */
  readonly rectangles = new Map<number, number>();
  private screens: Buffer[] = [];
  private inflate: zlib.Inflate | undefined;
  private inflated: Buffer[] = [];
  private closed = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly reader: ByteReader,
  ) {}

  /** Connects and completes the handshake; throws GuacError with guacd's status. */
  static async connect(opts: RfbConnectOptions): Promise<RfbClient> {
    const { socket, reader } = ByteReader.connect({ host: opts.host, port: opts.port });
    socket.setNoDelay(true);
    const client = new RfbClient(socket, reader);
    const timeout = opts.timeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new GuacError('VNC server did not answer in time', Status.UPSTREAM_TIMEOUT)), timeout);
        socket.once('connect', resolve);
        socket.once('error', (e: NodeJS.ErrnoException) => {
          const status = e.code === 'ETIMEDOUT' ? Status.UPSTREAM_TIMEOUT : Status.UPSTREAM_NOT_FOUND;
          reject(new GuacError(`Unable to connect to VNC server (${e.code ?? e.message})`, status));
        });
      });
      await Promise.race([
        client.handshake(opts),
        new Promise<never>((_, reject) => {
          clearTimeout(timer);
          timer = setTimeout(() => reject(new GuacError('VNC handshake timed out', Status.UPSTREAM_TIMEOUT)), timeout);
        }),
      ]);
      return client;
    } catch (e) {
      socket.destroy();
      if (e instanceof GuacError) throw e;
      if (e instanceof ReaderClosedError || (e as NodeJS.ErrnoException).code) {
        throw new GuacError('VNC server closed the connection during the handshake', Status.UPSTREAM_ERROR);
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private async handshake(opts: RfbConnectOptions): Promise<void> {
    const r = this.reader;
    const banner = (await r.read(12)).toString('latin1');
    const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(banner);
    if (!m) fail('Not a VNC server (bad protocol banner)');
    const major = Number(m[1]);
    const minor = Number(m[2]);
    if (major !== 3) fail(`Unsupported RFB version ${major}.${minor}`);
    const version = minor >= 8 ? 8 : minor >= 7 ? 7 : 3;
    this.socket.write(`RFB 003.00${version}\n`);

    let type: number;
    if (version === 3) {
      type = await r.u32();
      if (type === 0) fail(`VNC server refused the connection: ${await this.reason()}`, Status.CLIENT_FORBIDDEN);
    } else {
      const n = await r.u8();
      if (n === 0) fail(`VNC server refused the connection: ${await this.reason()}`, Status.CLIENT_FORBIDDEN);
      const types = [...(await r.read(n))];
      if (types.includes(2) && (opts.password !== undefined || !types.includes(1))) type = 2;
      else if (types.includes(1)) type = 1;
      else fail(`No supported VNC security type (server offers ${types.join(', ')})`, Status.UNSUPPORTED);
      this.socket.write(Buffer.from([type]));
    }
    if (type === 2) {
      if (opts.password === undefined) fail('VNC server requires a password', Status.CLIENT_UNAUTHORIZED);
      const challenge = await r.read(16);
      this.socket.write(vncAuthResponse(opts.password, challenge));
    } else if (type !== 1) {
      fail(`Unsupported VNC security type ${type}`, Status.UNSUPPORTED);
    }
    if (type === 2 || version === 8) {
      const result = await r.u32();
      if (result !== 0) {
        const why = version === 8 ? await this.reason() : 'authentication failed';
        fail(`VNC authentication failed: ${why}`, Status.CLIENT_UNAUTHORIZED);
      }
    }
    this.socket.write(Buffer.from([1])); // ClientInit: shared
    const init = await r.read(24);
    const width = init.readUInt16BE(0);
    const height = init.readUInt16BE(2);
    if (width === 0 || height === 0 || width > MAX_SIDE || height > MAX_SIDE) fail(`Bad desktop size ${width}x${height}`);
    const nameLen = init.readUInt32BE(20);
    if (nameLen > 4096) fail('Desktop name too long');
    this.name = (await r.read(nameLen)).toString('utf8');
    this.fb = new Framebuffer(width, height);
    this.setPixelFormat();
    this.setEncodings(opts.loopbackRaw === false ? opts.encodings : preferredEncodings(opts.encodings, this.socket.remoteAddress));
  }

  private async reason(): Promise<string> {
    const n = await this.reader.u32();
    if (n > 4096) fail('VNC failure reason too long');
    return (await this.reader.read(n)).toString('latin1');
  }

  private setPixelFormat(): void {
    const b = Buffer.alloc(20);
    b[0] = 0; // SetPixelFormat
    b[4] = 32; // bits per pixel
    b[5] = 24; // depth
    b[6] = 0; // little endian
    b[7] = 1; // true colour
    b.writeUInt16BE(255, 8);
    b.writeUInt16BE(255, 10);
    b.writeUInt16BE(255, 12);
    b[14] = 0; // red shift
    b[15] = 8; // green shift
    b[16] = 16; // blue shift
    this.socket.write(b);
  }

  private setEncodings(list: number[]): void {
    const b = Buffer.alloc(4 + 4 * list.length);
    b[0] = 2;
    b.writeUInt16BE(list.length, 2);
    list.forEach((e, i) => b.writeInt32BE(e, 4 + 4 * i));
    this.socket.write(b);
  }

  requestUpdate(incremental: boolean): void {
    const b = Buffer.alloc(10);
    b[0] = 3;
    b[1] = incremental ? 1 : 0;
    b.writeUInt16BE(this.fb.width, 6);
    b.writeUInt16BE(this.fb.height, 8);
    this.write(b);
  }

  key(keysym: number, down: boolean): void {
    const b = Buffer.alloc(8);
    b[0] = 4;
    b[1] = down ? 1 : 0;
    b.writeUInt32BE(keysym >>> 0, 4);
    this.write(b);
  }

  pointer(x: number, y: number, mask: number): void {
    const b = Buffer.alloc(6);
    b[0] = 5;
    b[1] = mask & 0xff;
    b.writeUInt16BE(Math.max(0, Math.min(0xffff, x)), 2);
    b.writeUInt16BE(Math.max(0, Math.min(0xffff, y)), 4);
    this.write(b);
  }

  cutText(latin1: Buffer): void {
    const b = Buffer.alloc(8);
    b[0] = 6;
    b.writeUInt32BE(latin1.length, 4);
    this.write(Buffer.concat([b, latin1]));
  }

  /** SetDesktopSize (ExtendedDesktopSize servers only); false when not supported. */
  setDesktopSize(width: number, height: number): boolean {
    if (!this.supportsResize || width <= 0 || height <= 0 || width > MAX_SIDE || height > MAX_SIDE) return false;
    const screens = this.screens.length > 0 ? this.screens.slice(0, 1) : [Buffer.alloc(16)];
    const b = Buffer.alloc(8);
    b[0] = 251;
    b.writeUInt16BE(width, 2);
    b.writeUInt16BE(height, 4);
    b[6] = screens.length;
    const s = Buffer.from(screens[0]!);
    s.writeUInt16BE(0, 4);
    s.writeUInt16BE(0, 6);
    s.writeUInt16BE(width, 8);
    s.writeUInt16BE(height, 10);
    this.write(Buffer.concat([b, s]));
    return true;
  }

  /** Bytes waiting to be written to the VNC server (for input backpressure). */
  get pendingWrite(): number {
    return this.socket.writableLength;
  }

  onDrain(cb: () => void): void {
    this.socket.once('drain', cb);
  }

  private write(b: Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(b);
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
    this.inflate?.close();
  }

  /** Reads server messages until the connection ends; resolves on close(), rejects on error. */
  async run(sink: RfbSink): Promise<void> {
    const r = this.reader;
    try {
      for (;;) {
        const type = await r.u8();
        if (type === 0) await this.framebufferUpdate(sink);
        else if (type === 1) {
          const h = await r.read(5);
          await r.skip(h.readUInt16BE(3) * 6);
        } else if (type === 2) {
          /* Bell: ignored */
        } else if (type === 3) {
          await r.read(3);
          const len = await r.s32();
          if (len < 0) fail('Extended clipboard was not negotiated');
          if (len > MAX_CUT_TEXT) await r.skip(len);
          else sink.clipboard(await r.read(len));
        } else fail(`Unknown VNC server message type ${type}`);
      }
    } catch (e) {
      if (this.closed) return;
      if (e instanceof ReaderClosedError || (e as NodeJS.ErrnoException).code) {
        throw new GuacError('Connection closed.', Status.UPSTREAM_ERROR);
      }
      throw e;
    }
  }

  private async framebufferUpdate(sink: RfbSink): Promise<void> {
    const r = this.reader;
    await r.u8();
    const count = await r.u16();
    for (let i = 0; i < count; i++) {
      const h = await r.read(12);
      const rect = { x: h.readUInt16BE(0), y: h.readUInt16BE(2), w: h.readUInt16BE(4), h: h.readUInt16BE(6) };
      const enc = h.readInt32BE(8);
      this.rectangles.set(enc, (this.rectangles.get(enc) ?? 0) + 1);
      if (enc === Encoding.LastRect) break;
      if (enc === Encoding.DesktopSize || enc === Encoding.ExtendedDesktopSize) {
        await this.desktopSize(enc, rect, sink);
        continue;
      }
      if (enc === Encoding.Cursor) {
        if (rect.w > MAX_CURSOR || rect.h > MAX_CURSOR) fail('Cursor shape too large');
        const pixels = await r.read(rect.w * rect.h * 4);
        const maskRow = Math.ceil(rect.w / 8);
        const mask = await r.read(maskRow * rect.h);
        const rgba = Buffer.alloc(rect.w * rect.h * 4);
        for (let y = 0; y < rect.h; y++) {
          for (let x = 0; x < rect.w; x++) {
            const o = (y * rect.w + x) * 4;
            pixels.copy(rgba, o, o, o + 3);
            rgba[o + 3] = (mask[y * maskRow + (x >> 3)]! >> (7 - (x & 7))) & 1 ? 255 : 0;
          }
        }
        sink.cursor(rect.x, rect.y, rect.w, rect.h, rgba);
        continue;
      }
      if (!this.fb.contains(rect)) fail('VNC server sent a rectangle outside the desktop');
      if (enc === Encoding.Raw) {
        // Straight into the framebuffer: whole rows at once, else row by row. The unused fourth
        // byte of each pixel stays as the server sent it (every reader ignores it).
        const fb = this.fb;
        const data = fb.data;
        const stride = fb.width * 4;
        fb.hold();
        try {
          if (rect.x === 0 && rect.w === fb.width) await r.readInto(data, rect.y * stride, rect.h * stride);
          else for (let y = 0; y < rect.h; y++) await r.readInto(data, (rect.y + y) * stride + rect.x * 4, rect.w * 4);
        } finally {
          fb.release();
        }
        sink.damaged(rect);
      } else if (enc === Encoding.CopyRect) {
        const s = await r.read(4);
        const sx = s.readUInt16BE(0);
        const sy = s.readUInt16BE(2);
        if (!this.fb.contains({ x: sx, y: sy, w: rect.w, h: rect.h })) fail('CopyRect source outside the desktop');
        this.fb.copyRect(sx, sy, rect);
        sink.copied(sx, sy, rect);
      } else if (enc === Encoding.ZRLE) {
        const len = await r.u32();
        if (len > MAX_ZRLE_BYTES) fail('ZRLE rectangle too large');
        // Upper bound of a rectangle's ZRLE data: 4 bytes per pixel (RLE of single pixels) plus
        // a subencoding byte and a 127-colour palette per 64×64 tile.
        const maxBytes = rect.w * rect.h * 4 + Math.ceil(rect.w / 64) * Math.ceil(rect.h / 64) * (1 + 127 * 3) + 1024;
        // No await between inflating and decoding: the scratch buffer is shared.
        const inflated = this.inflateZrle(await r.read(len), maxBytes);
        const data = inflated instanceof Promise ? await inflated : inflated;
        try {
          decodeZrle(this.fb, rect, data);
        } catch (e) {
          fail(`Bad ZRLE data: ${(e as Error).message}`);
        }
        sink.damaged(rect);
      } else fail(`VNC server used encoding ${enc}, which was not requested`);
    }
    sink.updateDone();
  }

  private async desktopSize(enc: number, rect: Rect, sink: RfbSink): Promise<void> {
    if (enc === Encoding.ExtendedDesktopSize) {
      this.supportsResize = true;
      const n = (await this.reader.read(4))[0]!;
      const screens: Buffer[] = [];
      for (let s = 0; s < n; s++) screens.push(Buffer.from(await this.reader.read(16)));
      if (screens.length > 0) this.screens = screens;
      // x = reason, y = status: a refused client-initiated resize changes nothing.
      if (rect.x === 1 && rect.y !== 0) return;
    }
    if (rect.w === 0 || rect.h === 0 || rect.w > MAX_SIDE || rect.h > MAX_SIDE) fail('Bad desktop size');
    if (rect.w === this.fb.width && rect.h === this.fb.height) return;
    this.fb.resize(rect.w, rect.h);
    sink.resized(rect.w, rect.h);
  }

  /**
   * Inflates one ZRLE rectangle with the connection's persistent zlib stream. Synchronously
   * into the process-wide scratch buffer where Node's zlib handle allows it (the bytes are
   * decoded right after, before anything else runs): the stream API would hop to the thread
   * pool once per 16 KiB of output (~170 hops for a full-screen photo frame) and allocate the
   * output anew each time.
   */
  private inflateZrle(data: Buffer, maxBytes: number): Buffer | Promise<Buffer> {
    if (!this.inflate) {
      this.inflate = zlib.createInflate();
      // Errors are reported by the step that hit them; the stream's later event is dropped.
      this.inflate.on('error', () => undefined);
    }
    const inf = this.inflate;
    const sync = syncInflater(inf);
    if (sync) return sync(data, maxBytes);
    return this.inflateStream(inf, data, maxBytes);
  }

  private async inflateStream(inf: zlib.Inflate, data: Buffer, maxBytes: number): Promise<Buffer> {
    if (inf.listenerCount('data') === 0) {
      inf.on('data', (d: Buffer) => this.inflated.push(d));
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(new GuacError(`Bad ZRLE zlib data: ${e.message}`, Status.UPSTREAM_ERROR));
      inf.once('error', onError);
      inf.write(data);
      inf.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        inf.off('error', onError);
        resolve();
      });
    });
    const out = Buffer.concat(this.inflated);
    this.inflated = [];
    if (out.length > maxBytes) fail('ZRLE rectangle inflates too large');
    return out;
  }
}

/** Inflated ZRLE data, shared by every connection (it is decoded before the next rectangle is read). */
let scratch = Buffer.alloc(0);
/** Scratch kept between rectangles at most (a larger one is for a rare huge rectangle). */
const SCRATCH_KEEP = 16 * 1024 * 1024;

type ZlibInternals = {
  _handle?: { writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void } | null;
  _writeState?: Uint32Array;
};

/**
 * A synchronous inflate step on a zlib stream's native handle (what zlib's own *Sync functions
 * use), or undefined where this Node has no such handle: the stream API is used then.
 */
function syncInflater(inf: zlib.Inflate): ((data: Buffer, maxBytes: number) => Buffer) | undefined {
  const z = inf as unknown as ZlibInternals;
  if (typeof z._handle?.writeSync !== 'function' || !(z._writeState instanceof Uint32Array)) return undefined;
  return (data, maxBytes) => {
    if (scratch.length > SCRATCH_KEEP) scratch = Buffer.alloc(0);
    if (scratch.length === 0) scratch = Buffer.allocUnsafe(Math.min(maxBytes, 1 << 20));
    let inOff = 0;
    let inLen = data.length;
    let outOff = 0;
    for (;;) {
      const room = scratch.length - outOff;
      z._handle!.writeSync(zlib.constants.Z_SYNC_FLUSH, data, inOff, inLen, scratch, outOff, room);
      if (inf.destroyed || !z._handle) fail('Bad ZRLE zlib data');
      const [availOut, availIn] = z._writeState!;
      outOff += room - availOut!;
      inOff += inLen - availIn!;
      inLen = availIn!;
      if (availOut! > 0) break; // all input consumed and flushed
      if (scratch.length >= maxBytes) fail('ZRLE rectangle inflates too large');
      const bigger = Buffer.allocUnsafe(Math.min(maxBytes, scratch.length * 2));
      scratch.copy(bigger, 0, 0, outOff);
      scratch = bigger;
    }
    return scratch.subarray(0, outOff);
  };
}
