// The Guacamole protocol's wire format: instructions are comma-separated elements, each
// `LENGTH.VALUE`, ended by `;`. LENGTH counts Unicode code points of VALUE (not UTF-16
// units, not bytes). This module parses a byte stream into instructions (bounded) and
// encodes instructions; it knows nothing about VNC.
import { StringDecoder } from 'node:string_decoder';

/** guacd's protocol status codes (libguac protocol-types.h). */
export const Status = {
  SUCCESS: 0x0000,
  UNSUPPORTED: 0x0100,
  SERVER_ERROR: 0x0200,
  SERVER_BUSY: 0x0201,
  UPSTREAM_TIMEOUT: 0x0202,
  UPSTREAM_ERROR: 0x0203,
  RESOURCE_NOT_FOUND: 0x0204,
  RESOURCE_CONFLICT: 0x0205,
  RESOURCE_CLOSED: 0x0206,
  UPSTREAM_NOT_FOUND: 0x0207,
  UPSTREAM_UNAVAILABLE: 0x0208,
  SESSION_CONFLICT: 0x0209,
  SESSION_TIMEOUT: 0x020a,
  SESSION_CLOSED: 0x020b,
  CLIENT_BAD_REQUEST: 0x0300,
  CLIENT_UNAUTHORIZED: 0x0301,
  CLIENT_FORBIDDEN: 0x0303,
  CLIENT_TIMEOUT: 0x0308,
  CLIENT_OVERRUN: 0x030d,
  CLIENT_BAD_TYPE: 0x030f,
  CLIENT_TOO_MANY: 0x031d,
} as const;

export type StatusCode = (typeof Status)[keyof typeof Status];

/** An error that ends a connection with a Guacamole `error` instruction. */
export class GuacError extends Error {
  constructor(
    message: string,
    readonly status: StatusCode,
  ) {
    super(message);
    this.name = 'GuacError';
  }
}

/** guacd's GUAC_INSTRUCTION_MAX_ELEMENTS. */
export const MAX_ELEMENTS = 128;
/** Cap on one instruction while handshaking (code points). */
export const HANDSHAKE_MAX_INSTRUCTION = 8 * 1024;
/** Cap on one instruction once connected (blobs, clipboard chunks), in code points. */
export const CONNECTED_MAX_INSTRUCTION = 64 * 1024;

/** Number of Unicode code points in a string (surrogate pairs count once). */
export function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** Encodes one instruction; elements are converted with String(). */
export function encode(opcode: string, ...args: Array<string | number>): string {
  let out = `${codePointLength(opcode)}.${opcode}`;
  for (const a of args) {
    const s = typeof a === 'string' ? a : String(a);
    out += `,${codePointLength(s)}.${s}`;
  }
  return out + ';';
}

export type Instruction = { opcode: string; args: string[] };

/**
 * Incremental parser. `push(bytes)` returns the complete instructions parsed so far and
 * throws GuacError (CLIENT_BAD_REQUEST for malformed input, CLIENT_OVERRUN for oversized
 * instructions). Pending input is never larger than the current instruction cap.
 */
export class InstructionParser {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';
  private elements: string[] = [];
  private scan = 0; // index in buf of the next element's length prefix
  private instructionPoints = 0; // code points consumed by the current instruction
  maxInstruction: number;

  constructor(maxInstruction = HANDSHAKE_MAX_INSTRUCTION) {
    this.maxInstruction = maxInstruction;
  }

  push(chunk: Buffer | string): Instruction[] {
    this.buf += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const out: Instruction[] = [];
    for (;;) {
      const ins = this.next();
      if (!ins) break;
      out.push(ins);
    }
    // Drop consumed text (parsed elements are kept apart) so memory stays bounded.
    if (this.scan > 0) {
      this.buf = this.buf.slice(this.scan);
      this.scan = 0;
    }
    if (this.buf.length > this.maxInstruction * 2 + 16) {
      throw new GuacError('Instruction too large', 0x030d);
    }
    return out;
  }

  private next(): Instruction | undefined {
    const buf = this.buf;
    for (;;) {
      // Length prefix: digits then '.'.
      let i = this.scan;
      let len = 0;
      let digits = 0;
      for (; i < buf.length; i++) {
        const c = buf.charCodeAt(i);
        if (c === 0x2e) break;
        if (c < 0x30 || c > 0x39) throw new GuacError('Malformed instruction: bad length', 0x0300);
        len = len * 10 + (c - 0x30);
        if (++digits > 9) throw new GuacError('Instruction too large', 0x030d);
      }
      if (i >= buf.length) return undefined; // incomplete prefix
      if (digits === 0) throw new GuacError('Malformed instruction: empty length', 0x0300);
      if (this.instructionPoints + len > this.maxInstruction) {
        throw new GuacError('Instruction too large', 0x030d);
      }
      // Advance `len` code points from i+1.
      const start = i + 1;
      let j = start;
      let points = 0;
      while (points < len && j < buf.length) {
        const c = buf.charCodeAt(j);
        if (c >= 0xd800 && c <= 0xdbff) {
          if (j + 1 >= buf.length) return undefined; // wait for the low surrogate
          const d = buf.charCodeAt(j + 1);
          j += d >= 0xdc00 && d <= 0xdfff ? 2 : 1;
        } else {
          j++;
        }
        points++;
      }
      if (points < len || j >= buf.length) return undefined; // need value + terminator
      const term = buf.charCodeAt(j);
      if (term !== 0x2c && term !== 0x3b) {
        throw new GuacError('Malformed instruction: bad terminator', 0x0300);
      }
      this.elements.push(buf.slice(start, j));
      this.instructionPoints += len + digits + 2;
      if (this.elements.length > MAX_ELEMENTS) throw new GuacError('Too many elements', 0x030d);
      this.scan = j + 1;
      if (term === 0x3b) {
        const [opcode, ...args] = this.elements;
        this.elements = [];
        this.instructionPoints = 0;
        return { opcode: opcode ?? '', args };
      }
    }
  }
}

/** Base64 chunk size guacd uses for blobs is 6048; we keep each blob's text within it. */
export const BLOB_BASE64_MAX = 6048;
const BLOB_BYTES = (BLOB_BASE64_MAX / 4) * 3;

/** `blob` instructions for a binary payload, each blob's base64 ≤ BLOB_BASE64_MAX chars. */
export function encodeBlobs(stream: number, data: Buffer): string {
  let out = '';
  for (let off = 0; off < data.length; off += BLOB_BYTES) {
    out += encode('blob', stream, data.subarray(off, off + BLOB_BYTES).toString('base64'));
  }
  return out;
}

/**
 * Instructions written straight into bytes: what a frame is made of (image blobs above all)
 * never becomes one large string, which V8 would keep in its large-object space until a full
 * GC and convert to UTF-8 again on the socket. `take()` hands out the bytes written so far.
 */
export class InstructionWriter {
  private buf: Buffer;
  private len = 0;

  constructor(capacity = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  get length(): number {
    return this.len;
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.len + n, this.buf.length * 2, 256));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  private element(s: string): void {
    // ASCII (numbers, opcodes, mimetypes, base64) is the common case: length = code points = bytes.
    const bytes = Buffer.byteLength(s, 'utf8');
    const points = bytes === s.length ? bytes : codePointLength(s);
    const prefix = String(points);
    this.reserve(prefix.length + 2 + bytes);
    this.len += this.buf.write(prefix, this.len, 'latin1');
    this.buf[this.len++] = 0x2e; // '.'
    this.len += this.buf.write(s, this.len, 'utf8');
  }

  /** One instruction, as encode() would write it. */
  instruction(opcode: string, ...args: Array<string | number>): this {
    this.element(opcode);
    for (const a of args) {
      this.buf[this.len++] = 0x2c; // ',' (element() reserved one byte more than it wrote)
      this.element(typeof a === 'string' ? a : String(a));
    }
    this.reserve(1);
    this.buf[this.len++] = 0x3b; // ';'
    return this;
  }

  /** Instructions already encoded as text. */
  text(s: string): this {
    if (s.length === 0) return this;
    const n = Buffer.byteLength(s, 'utf8');
    this.reserve(n);
    this.len += this.buf.write(s, this.len, 'utf8');
    return this;
  }

  /** `blob` instructions for a binary payload, as encodeBlobs() would write them. */
  blobs(stream: number, data: Buffer): this {
    const id = String(stream);
    const head = `4.blob,${id.length}.${id},`;
    this.reserve(blobsSize(id.length, data.length));
    for (let off = 0; off < data.length; off += BLOB_BYTES) {
      const chunk = data.subarray(off, off + BLOB_BYTES);
      const b64 = 4 * Math.ceil(chunk.length / 3);
      this.len += this.buf.write(head, this.len, 'latin1');
      this.len += this.buf.write(`${b64}.`, this.len, 'latin1');
      this.len += this.buf.write(chunk.toString('base64'), this.len, 'latin1');
      this.buf[this.len++] = 0x3b;
    }
    return this;
  }

  /** The bytes written so far; the writer starts afresh (the bytes stay the caller's). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.len);
    this.buf = Buffer.alloc(0);
    this.len = 0;
    return out;
  }
}

/** Bytes of the `blob` instructions for `dataBytes` bytes on a stream whose index has `idDigits` digits. */
function blobsSize(idDigits: number, dataBytes: number): number {
  const full = Math.floor(dataBytes / BLOB_BYTES);
  const rest = dataBytes % BLOB_BYTES;
  const one = (b64: number) => 7 + String(idDigits).length + 1 + idDigits + 1 + String(b64).length + 1 + b64 + 1;
  return full * one(BLOB_BASE64_MAX) + (rest > 0 ? one(4 * Math.ceil(rest / 3)) : 0);
}
