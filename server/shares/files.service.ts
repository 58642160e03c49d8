// The files API's operations inside one user's folder. Every path goes through resolveInHome
// (no "..", no links followed); uploads stream to a temp file and are renamed into place, so a
// refused or broken upload leaves nothing behind.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Actor } from '../broker/index.ts';
import { BrokerError } from '../errors.ts';
import { INTERNAL_PREFIX, resolveInHome } from './names.ts';
import type { Share, ShareService, Usage } from './share.service.ts';

export interface FileEntry {
  name: string;
  type: 'file' | 'folder' | 'other';
  sizeBytes: number;
  modifiedAt: string;
}

const O_NOFOLLOW = fs.constants.O_NOFOLLOW;
/** Bytes of a refused upload read and thrown away before the connection is dropped. */
const DRAIN_LIMIT = 16 * 1024 * 1024;

export class FilesService {
  constructor(private readonly shares: ShareService) {}

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
   * the folder is at its hard quota; stopped mid-way when it passes maxUploadBytes (413) or
   * the hard quota (507), and the temp file is removed.
   */
  async upload(actor: Actor, rel: string, body: AsyncIterable<Buffer>, opts: { overwrite: boolean; declaredBytes?: number; share?: Share | undefined }): Promise<{ path: string; sizeBytes: number; created: boolean }> {
    const { share, home, user } = await this.home(actor, opts.share);
    const r = await resolveInHome(home, rel);
    if (r.stat && !r.stat.isFile()) throw new BrokerError('conflict', 'A folder of that name exists.', { field: 'path' });
    if (r.stat && !opts.overwrite) throw new BrokerError('already_exists', 'A file of that name exists; send overwrite=true to replace it.', { field: 'path' });
    const max = this.shares.maxUploadBytes;
    if (opts.declaredBytes !== undefined && opts.declaredBytes > max) throw new BrokerError('payload_too_large', `Uploads are limited to ${max} bytes.`, { field: 'body' });
    const usage = await this.shares.usage(share, user);
    const replaced = r.stat?.size ?? 0;
    const room = share.quota.hardBytes - (usage.usedBytes - replaced);
    const quotaError = () => new BrokerError('quota_exceeded', `This upload would take your folder over its limit of ${share.quota.hardBytes} bytes (${usage.usedBytes} used).`);
    if (room <= 0 || (opts.declaredBytes !== undefined && opts.declaredBytes > room)) throw quotaError();

    const tmp = path.join(path.dirname(r.abs), `${INTERNAL_PREFIX}upload-${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(tmp, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY | O_NOFOLLOW, 0o600);
    let written = 0;
    let drained = 0;
    let failure: BrokerError | undefined;
    try {
      for await (const chunk of body) {
        if (failure) {
          // Drain the rest of the request so the client reads the answer; give up on abuse.
          drained += chunk.length;
          if (drained > DRAIN_LIMIT) break;
          continue;
        }
        written += chunk.length;
        if (written > max) failure = new BrokerError('payload_too_large', `Uploads are limited to ${max} bytes.`, { field: 'body' });
        else if (written > room) failure = quotaError();
        else await fh.write(chunk);
      }
      if (failure) throw failure;
      await fh.sync();
      await fh.close();
      // Re-checked after the write: the target must still not be a link or a folder.
      const now = await fsp.lstat(r.abs).catch(() => undefined);
      if (now && !now.isFile()) throw new BrokerError('conflict', 'A folder or link of that name appeared.', { field: 'path' });
      if (now && !opts.overwrite) throw new BrokerError('already_exists', 'A file of that name exists.', { field: 'path' });
      await fsp.rename(tmp, r.abs);
      return { path: r.parts.join('/'), sizeBytes: written, created: !r.stat };
    } catch (e) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
      throw e;
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
    const { home } = await this.home(actor, share);
    const r = await resolveInHome(home, rel);
    if (!r.stat) throw new BrokerError('not_found', 'No such file or folder.', { field: 'path' });
    if (r.stat.isDirectory()) {
      if (recursive) await fsp.rm(r.abs, { recursive: true, force: true });
      else {
        try {
          await fsp.rmdir(r.abs);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY') throw new BrokerError('conflict', 'The folder is not empty; send recursive=true to delete it with its contents.', { field: 'path' });
          throw e;
        }
      }
    } else {
      await fsp.unlink(r.abs);
    }
  }
}
