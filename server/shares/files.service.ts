// The files API's operations inside one user's folder. Every path goes through resolveInHome
// (no "..", no links followed); uploads stream to a temp file and are renamed into place, so a
// refused, broken or shut-down upload leaves nothing behind. Every change through here updates
// the folder's count kept in Redis; uploads reserve room under the hard quota before writing.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Actor } from '../broker/index.ts';
import type { Logger } from '../observability/index.ts';
import { BrokerError } from '../errors.ts';
import type { QuotaRepository } from '../store/index.ts';
import { INTERNAL_PREFIX, UPLOAD_PREFIX, folderName, resolveInHome } from './names.ts';
import type { Share, ShareService, Usage } from './share.service.ts';
import { RESERVE_AHEAD_BYTES, UploadReservation } from './reservation.ts';

export interface FileEntry {
  name: string;
  type: 'file' | 'folder' | 'other';
  sizeBytes: number;
  modifiedAt: string;
}

const O_NOFOLLOW = fs.constants.O_NOFOLLOW;
/** Bytes of a refused upload read and thrown away before the connection is dropped. */
const DRAIN_LIMIT = 16 * 1024 * 1024;

interface RunningUpload {
  abort: AbortController;
  done: Promise<unknown>;
}

const shuttingDown = () => new BrokerError('not_ready', 'The broker is shutting down; send the file again.', { retryAfterSeconds: 2 });

export class FilesService {
  private readonly running = new Set<RunningUpload>();
  private closed = false;

  constructor(
    private readonly shares: ShareService,
    private readonly quota: QuotaRepository,
    private readonly logger: Logger,
  ) {}

  /**
   * Shutdown: refuses new uploads, aborts the running ones (their clients get 503 not_ready, or
   * a cut connection) and waits until their temp files are removed and reservations released.
   */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.running];
    for (const u of all) u.abort.abort(shuttingDown());
    await Promise.all(all.map((u) => u.done));
  }

  /** The user's share (their pools' share is the first share unless a pool says otherwise) and folder. */
  async home(actor: Actor, share?: Share): Promise<{ share: Share; home: string; user: string }> {
    const p = actor.principal;
    // An API key is nobody's: it has no folder (not found, like anything not yours).
    if (!p || p.kind !== 'user') throw new BrokerError('not_found', 'API keys have no files.');
    const s = share ?? this.shares.shares[0]!;
    return { share: s, home: await this.shares.ensureHome(actor, s, p.id, { via: 'files' }), user: p.id };
  }

  /** My use of the share against the quota. */
  async usage(actor: Actor, share?: Share): Promise<Usage> {
    const h = await this.home(actor, share);
    return this.shares.usage(h.share, h.user);
  }

  async list(actor: Actor, rel: string, share?: Share): Promise<{ path: string; entries: FileEntry[] }> {
    const { home } = await this.home(actor, share);
    const r = await resolveInHome(home, rel, { allowRoot: true });
    if (!r.stat) throw new BrokerError('not_found', 'No such folder.', { field: 'path' });
    if (!r.stat.isDirectory()) throw new BrokerError('bad_path', 'Not a folder.', { field: 'path' });
    const entries: FileEntry[] = [];
    for (const e of await fsp.readdir(r.abs, { withFileTypes: true })) {
      if (e.name.startsWith(INTERNAL_PREFIX)) continue;
      const st = await fsp.lstat(path.join(r.abs, e.name)).catch(() => undefined);
      if (!st) continue;
      entries.push({ name: e.name, type: st.isDirectory() ? 'folder' : st.isFile() ? 'file' : 'other', sizeBytes: st.isFile() ? st.size : 0, modifiedAt: st.mtime.toISOString() });
    }
    entries.sort((a, b) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type === 'folder' ? -1 : 1));
    return { path: r.parts.join('/'), entries };
  }

  /** Opens a file for download (never through a link). */
  async open(actor: Actor, rel: string, share?: Share): Promise<{ name: string; size: number; stream: Readable }> {
    const { home } = await this.home(actor, share);
    const r = await resolveInHome(home, rel);
    if (!r.stat) throw new BrokerError('not_found', 'No such file.', { field: 'path' });
    if (!r.stat.isFile()) throw new BrokerError('bad_path', 'Not a file.', { field: 'path' });
    const fh = await fsp.open(r.abs, fs.constants.O_RDONLY | O_NOFOLLOW);
    const st = await fh.stat();
    return { name: r.parts.at(-1)!, size: st.size, stream: fh.createReadStream({ autoClose: true }) };
  }

  /**
   * Streams `body` into the file: refused before a byte is written when the path is bad or
   * the hard quota has no room for the declared length; stopped mid-way when it passes
   * maxUploadBytes (413) or the quota refuses more room (507); aborted at shutdown (503). The
   * temp file is removed and the reservation released whenever the file is not stored.
   */
  async upload(actor: Actor, rel: string, body: AsyncIterable<Buffer>, opts: { overwrite: boolean; declaredBytes?: number; share?: Share | undefined }): Promise<{ path: string; sizeBytes: number; created: boolean }> {
    if (this.closed) throw shuttingDown();
    const abort = new AbortController();
    const run = this.store(actor, rel, body, opts, abort.signal);
    const u: RunningUpload = { abort, done: run.catch(() => undefined) };
    this.running.add(u);
    try {
      return await run;
    } finally {
      this.running.delete(u);
    }
  }

  private async store(actor: Actor, rel: string, body: AsyncIterable<Buffer>, opts: { overwrite: boolean; declaredBytes?: number; share?: Share | undefined }, signal: AbortSignal): Promise<{ path: string; sizeBytes: number; created: boolean }> {
    const { share, home, user } = await this.home(actor, opts.share);
    const r = await resolveInHome(home, rel);
    if (r.stat && !r.stat.isFile()) throw new BrokerError('conflict', 'A folder of that name exists.', { field: 'path' });
    if (r.stat && !opts.overwrite) throw new BrokerError('already_exists', 'A file of that name exists; send overwrite=true to replace it.', { field: 'path' });
    const max = this.shares.maxUploadBytes;
    if (opts.declaredBytes !== undefined && opts.declaredBytes > max) throw new BrokerError('payload_too_large', `Uploads are limited to ${max} bytes.`, { field: 'body' });
    const usage = await this.shares.usage(share, user);
    const hard = share.quota.hardBytes;
    // Replacing a file counts only the difference: its bytes are room for the new ones.
    const replaced = r.stat?.size ?? 0;
    const beyondReplaced = (n: number) => Math.max(0, n - replaced);
    const quotaError = (used: number) => new BrokerError('quota_exceeded', `This upload would take your folder over its limit of ${hard} bytes (${used} used or being uploaded).`);
    if (usage.usedBytes - replaced >= hard) throw quotaError(usage.usedBytes);
    signal.throwIfAborted();

    const id = randomBytes(8).toString('hex');
    const folder = folderName(user);
    const reservation = new UploadReservation(this.quota, share, folder, id, () => this.shares.recount(share, folder));
    let fh: fs.promises.FileHandle | undefined;
    const tmp = path.join(home, `${UPLOAD_PREFIX}${id}`);
    let stored = false;
    // Shutdown does not wait for the client's next chunk.
    const aborted = new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason as Error);
      else signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
    });
    aborted.catch(() => undefined);
    try {
      if (opts.declaredBytes !== undefined && !(await reservation.cover(beyondReplaced(opts.declaredBytes), 0))) throw quotaError(reservation.usedBytes + reservation.othersBytes);
      signal.throwIfAborted();
      fh = await fsp.open(tmp, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY | O_NOFOLLOW, 0o600);
      let written = 0;
      let drained = 0;
      let failure: BrokerError | undefined;
      const chunks = body[Symbol.asyncIterator]();
      for (;;) {
        const next = await Promise.race([chunks.next(), aborted]);
        if (next.done) break;
        const chunk = next.value;
        if (failure) {
          // Drain the rest of the request so the client reads the answer; give up on abuse.
          drained += chunk.length;
          if (drained > DRAIN_LIMIT) break;
          continue;
        }
        written += chunk.length;
        if (written > max) failure = new BrokerError('payload_too_large', `Uploads are limited to ${max} bytes.`, { field: 'body' });
        else if (!(await reservation.cover(beyondReplaced(written), RESERVE_AHEAD_BYTES))) failure = quotaError(reservation.usedBytes + reservation.othersBytes);
        else await fh.write(chunk);
        signal.throwIfAborted();
      }
      if (failure) throw failure;
      // A cut connection must never store a truncated file as if it were whole.
      if (opts.declaredBytes !== undefined && written !== opts.declaredBytes) throw new Error(`upload ended after ${written} of ${opts.declaredBytes} bytes`);
      await fh.sync();
      await fh.close();
      fh = undefined;
      signal.throwIfAborted();
      // Re-checked after the write: the target must still not be a link or a folder.
      const now = await fsp.lstat(r.abs).catch(() => undefined);
      if (now && !now.isFile()) throw new BrokerError('conflict', 'A folder or link of that name appeared.', { field: 'path' });
      if (now && !opts.overwrite) throw new BrokerError('already_exists', 'A file of that name exists.', { field: 'path' });
      await fsp.rename(tmp, r.abs);
      stored = true;
      await reservation.settle(written - (now?.size ?? 0), now ? 0 : 1).catch((e: unknown) => {
        // The file is stored; the count catches up at the next recount (the reservation expires).
        this.logger.warn({ share: share.name, user, err: (e as Error).message }, 'upload stored but its size not counted');
      });
      return { path: r.parts.join('/'), sizeBytes: written, created: !now };
    } finally {
      if (!stored) {
        await fh?.close().catch(() => undefined);
        await fsp.rm(tmp, { force: true });
        await reservation.release().catch(() => undefined);
      }
    }
  }

  async mkdir(actor: Actor, rel: string, share?: Share): Promise<{ path: string }> {
    const { home } = await this.home(actor, share);
    const r = await resolveInHome(home, rel);
    if (r.stat) throw new BrokerError('already_exists', 'Something of that name exists.', { field: 'path' });
    await fsp.mkdir(r.abs, { mode: 0o700 });
    return { path: r.parts.join('/') };
  }

  async rename(actor: Actor, from: string, to: string, share?: Share): Promise<{ path: string }> {
    const { home } = await this.home(actor, share);
    const a = await resolveInHome(home, from, { field: 'path' });
    const b = await resolveInHome(home, to, { field: 'to' });
    if (!a.stat) throw new BrokerError('not_found', 'No such file or folder.', { field: 'path' });
    if (b.stat) throw new BrokerError('already_exists', 'Something of that name exists.', { field: 'to' });
    if (a.stat.isDirectory() && (b.parts.join('/') + '/').startsWith(a.parts.join('/') + '/')) {
      throw new BrokerError('bad_path', 'A folder cannot move into itself.', { field: 'to' });
    }
    await fsp.rename(a.abs, b.abs);
    return { path: b.parts.join('/') };
  }

  async remove(actor: Actor, rel: string, recursive: boolean, share?: Share): Promise<void> {
    const h = await this.home(actor, share);
    const r = await resolveInHome(h.home, rel);
    if (!r.stat) throw new BrokerError('not_found', 'No such file or folder.', { field: 'path' });
    const folder = folderName(h.user);
    if (r.stat.isDirectory()) {
      if (recursive) {
        const freed = await this.shares.countUnder(r.abs);
        await fsp.rm(r.abs, { recursive: true, force: true });
        await this.quota.settle(h.share.name, folder, '', { bytes: -freed.usedBytes, files: -freed.files });
      } else {
        try {
          await fsp.rmdir(r.abs);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY') throw new BrokerError('conflict', 'The folder is not empty; send recursive=true to delete it with its contents.', { field: 'path' });
          throw e;
        }
      }
    } else {
      await fsp.unlink(r.abs);
      await this.quota.settle(h.share.name, folder, '', { bytes: -r.stat.size, files: -1 });
    }
  }
}
