// What the tunnel measures and keeps of one browser connection, beside relaying it:
// - a session recording (pool policy recording 'on'/'notify'): the Guacamole instructions the
//   tunnel relays from guacd (or the built-in gateway) to the browser, written as they are — the
//   format of guacd's `recording-path`, which guacamole-common-js's Guacamole.SessionRecording
//   plays. Only that direction is written, and only after guacd's `ready`: the handshake (the
//   connect arguments, with the console password) goes tunnel → guacd and the ticket comes
//   from the browser, so neither can reach the file; the tunnel's own internal instructions
//   (opcode "", e.g. the connection id, ping answers) are skipped too.
// - live statistics: bytes both ways, bandwidth, the `sync` round trip (guacd sends `sync T`,
//   the browser answers `sync T` once it drew the frame), the last input.
import { closeSync, createWriteStream, mkdirSync, chmodSync, openSync, type WriteStream } from 'node:fs';
import { join, resolve } from 'node:path';

/** The file name of a recording in recordings.dir. */
export const recordingFile = (dir: string, id: string): string => join(resolve(dir), `${id}.guac`);

/** Makes recordings.dir (0700, also when it existed with wider modes). */
export function ensureRecordingsDir(dir: string): string {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true, mode: 0o700 });
  chmodSync(abs, 0o700);
  return abs;
}

/** A recording stops (truncated, not corrupted; the tunnel closes the connection) when the disk falls this far behind. */
const MAX_BACKLOG_BYTES = 32 * 1024 * 1024;

/** Writes the server → browser instruction stream of one tunnel to a new 0600 file. */
export class StreamRecorder {
  bytes = 0;
  truncated = false;
  /** The file could not be written (the tunnel then closes the connection: it does not stream unrecorded). */
  failed = false;
  private readonly out: WriteStream;

  constructor(readonly path: string, onError: (err: Error) => void) {
    // 'wx': never append to (or follow a link to) an existing file.
    const fd = openSync(path, 'wx', 0o600);
    try {
      this.out = createWriteStream('', { fd, autoClose: true });
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.out.on('error', (err) => {
      this.failed = true;
      onError(err);
    });
  }

  /** One message the tunnel sends the browser (whole instructions). */
  write(message: string): void {
    if (this.failed || this.truncated) return;
    // The tunnel's internal instructions ("0.,..."): connection id, ping answers.
    if (message.startsWith('0.,')) return;
    if (this.out.writableLength > MAX_BACKLOG_BYTES) {
      this.truncated = true;
      return;
    }
    this.bytes += Buffer.byteLength(message);
    this.out.write(message);
  }

  close(): Promise<void> {
    return new Promise((r) => {
      if (this.out.closed || this.out.destroyed) return r();
      this.out.end(() => r());
      this.out.once('error', () => r());
    });
  }
}

/** Pending `sync` timestamps kept per tunnel (a browser that never answers does not grow it). */
const MAX_PENDING_SYNCS = 64;
/** Bandwidth is averaged over about this window. */
const BANDWIDTH_WINDOW_MS = 5_000;

/** Live figures of one tunnel (written to Redis by the tunnel, at most every 2 s). */
export class TunnelMeter {
  rttMs: number | null = null;
  lastInputAt: number | null = null;
  private readonly syncs = new Map<string, number>();
  private readonly samples: { at: number; bytes: number }[] = [];

  constructor(readonly clientAddress: string, readonly userAgent: string, private readonly now: () => number = Date.now, private readonly onRtt?: (ms: number) => void) {}

  /** A message to the browser: notes when each `sync` left. */
  toClient(message: string): void {
    // Messages are whole instructions; a sync is `4.sync,<n>.<timestamp>[,...];`.
    if (!message.startsWith('4.sync,')) return;
    const dot = message.indexOf('.', 7);
    const len = Number(message.slice(7, dot));
    if (!(len > 0 && len < 20)) return;
    const ts = message.slice(dot + 1, dot + 1 + len);
    if (this.syncs.size >= MAX_PENDING_SYNCS) this.syncs.delete(this.syncs.keys().next().value as string);
    this.syncs.set(ts, this.now());
  }

  /** The browser acknowledged frame `ts`. */
  clientSync(ts: string | undefined): void {
    if (ts === undefined) return;
    const sent = this.syncs.get(ts);
    if (sent === undefined) return;
    this.syncs.delete(ts);
    this.rttMs = Math.max(0, this.now() - sent);
    this.onRtt?.(this.rttMs);
  }

  input(): void {
    this.lastInputAt = this.now();
  }

  /** Bytes/s (both ways) over the last few seconds, given the running total now. */
  bandwidth(totalBytes: number): number {
    const at = this.now();
    this.samples.push({ at, bytes: totalBytes });
    while (this.samples.length > 2 && at - this.samples[1]!.at >= BANDWIDTH_WINDOW_MS) this.samples.shift();
    const first = this.samples[0]!;
    const dt = at - first.at;
    return dt > 0 ? Math.round(((totalBytes - first.bytes) * 1000) / dt) : 0;
  }
}
