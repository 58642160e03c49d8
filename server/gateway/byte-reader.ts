// Async exact-length reads over a socket, with backpressure: the socket is paused while
// more than `highWater` bytes wait unread, unless a read needs more than that.
// With `ByteReader.connect` the socket reads into one buffer shared by every connection
// (net's `onread`): bytes a pending readInto() waits for go straight to its destination (a
// Raw rectangle into the framebuffer), the rest is copied out. Node would otherwise allocate a
// fresh 64 KiB buffer per read: megabytes per frame of short-lived external memory.
import net, { type Socket } from 'node:net';

export class ReaderClosedError extends Error {
  constructor(message = 'connection closed') {
    super(message);
    this.name = 'ReaderClosedError';
  }
}

export class ByteReader {
  private chunks: Buffer[] = [];
  private head = 0; // offset into chunks[0]
  private available = 0;
  private want = 0;
  private wake: (() => void) | undefined;
  private closedWith: Error | undefined;
  /** A readInto() waiting for bytes that go straight to its destination. */
  private direct: { dst: Uint8Array; offset: number; n: number } | undefined;

  /** Connects a TCP socket whose reads go through the shared buffer (see the file comment). */
  static connect(opts: { host: string; port: number }, highWater?: number): { socket: Socket; reader: ByteReader } {
    let reader: ByteReader | undefined;
    const socket = net.connect({
      host: opts.host,
      port: opts.port,
      onread: { buffer: () => sharedReadBuffer, callback: (n: number, buf: Uint8Array) => (reader!.received(buf.subarray(0, n), true), true) },
    });
    reader = new ByteReader(socket, highWater, false);
    return { socket, reader };
  }

  constructor(
    private readonly socket: Socket,
    private readonly highWater = 4 * 1024 * 1024,
    listen = true,
  ) {
    if (listen) socket.on('data', (d: Buffer) => this.received(d, false));
    const end = (err?: Error) => {
      if (!this.closedWith) this.closedWith = err ?? new ReaderClosedError();
      this.signal();
    };
    socket.on('end', () => end());
    socket.on('close', () => end());
    socket.on('error', (e) => end(e));
  }

  /** Bytes from the socket; `borrowed` ones are only valid during this call. */
  private received(d: Uint8Array, borrowed: boolean): void {
    const direct = this.direct;
    if (direct && this.available === 0) {
      const k = Math.min(direct.n, d.length);
      direct.dst.set(d.subarray(0, k), direct.offset);
      direct.offset += k;
      direct.n -= k;
      if (direct.n === 0) this.signal();
      d = d.subarray(k);
      if (d.length === 0) return;
    }
    const chunk = borrowed ? Buffer.from(d) : (d as Buffer);
    this.chunks.push(chunk);
    this.available += chunk.length;
    if (this.available > Math.max(this.highWater, this.want)) this.socket.pause();
    if (this.wake && !this.direct && this.available >= this.want) this.signal();
  }

  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Bytes buffered and not yet read. */
  get buffered(): number {
    return this.available;
  }

  async read(n: number): Promise<Buffer> {
    while (this.available < n) {
      if (this.closedWith) throw this.closedWith;
      this.want = n;
      if (this.socket.isPaused()) this.socket.resume();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    this.want = 0;
    return this.take(n);
  }

  /** Reads exactly n bytes into dst at offset (no intermediate buffer). */
  async readInto(dst: Uint8Array, offset: number, n: number): Promise<void> {
    // First what is queued, ...
    while (n > 0 && this.available > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.head, n);
      dst.set(c.subarray(this.head, this.head + k), offset);
      offset += k;
      n -= k;
      this.head += k;
      this.available -= k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    // ... then straight from the socket.
    if (n > 0) {
      if (this.closedWith) throw this.closedWith;
      const direct = (this.direct = { dst, offset, n });
      if (this.socket.isPaused()) this.socket.resume();
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.direct = undefined;
      if (direct.n > 0) throw this.closedWith ?? new ReaderClosedError();
    }
    if (this.available <= this.highWater && this.socket.isPaused() && !this.closedWith) this.socket.resume();
  }

  async u8(): Promise<number> {
    return (await this.read(1))[0]!;
  }
  async u16(): Promise<number> {
    return (await this.read(2)).readUInt16BE(0);
  }
  async u32(): Promise<number> {
    return (await this.read(4)).readUInt32BE(0);
  }
  async s32(): Promise<number> {
    return (await this.read(4)).readInt32BE(0);
  }

  /** Reads and drops n bytes without holding them all in memory. */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      const step = Math.min(n, 64 * 1024);
      await this.read(step);
      n -= step;
    }
  }

  private take(n: number): Buffer {
    let out: Buffer;
    const first = this.chunks[0];
    if (n === 0) out = Buffer.alloc(0);
    else if (first && first.length - this.head >= n) {
      out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length - this.head, n - off);
        c.copy(out, off, this.head, this.head + k);
        off += k;
        this.head += k;
        if (this.head === c.length) {
          this.chunks.shift();
          this.head = 0;
        }
      }
    }
    this.available -= n;
    if (this.available <= this.highWater && this.socket.isPaused() && !this.closedWith) this.socket.resume();
    return out;
  }
}

/** The read buffer of every ByteReader.connect socket (its bytes are consumed synchronously). */
const sharedReadBuffer = Buffer.allocUnsafe(256 * 1024);
