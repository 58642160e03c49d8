// Async exact-length reads over a socket, with backpressure: the socket is paused while
// more than `highWater` bytes wait unread, unless a read needs more than that.
import type { Socket } from 'node:net';

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

  constructor(
    private readonly socket: Socket,
    private readonly highWater = 4 * 1024 * 1024,
  ) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.available += d.length;
      if (this.available > Math.max(this.highWater, this.want)) socket.pause();
      if (this.wake && this.available >= this.want) this.signal();
    });
    const end = (err?: Error) => {
      if (!this.closedWith) this.closedWith = err ?? new ReaderClosedError();
      this.signal();
    };
    socket.on('end', () => end());
    socket.on('close', () => end());
    socket.on('error', (e) => end(e));
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
