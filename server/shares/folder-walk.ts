// Walks of a user's folder: the real count behind the usage kept in Redis, and the removal of
// upload temp files a broker left behind when it died mid-upload.
import type fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { INTERNAL_PREFIX, UPLOAD_PREFIX } from './names.ts';

export interface FolderTotals {
  usedBytes: number;
  files: number;
}

async function entries(dir: string): Promise<fs.Dirent[]> {
  try {
    return await fsp.readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Removes `dir/name` if it is an upload temp file untouched since `staleBefore` (ms). True if removed. */
async function removeIfStale(dir: string, e: fs.Dirent, staleBefore: number): Promise<boolean> {
  if (!e.isFile() || !e.name.startsWith(UPLOAD_PREFIX)) return false;
  const p = path.join(dir, e.name);
  const st = await fsp.lstat(p).catch(() => undefined);
  // mtime moves with every write: a live upload of another replica is never stale.
  if (!st || st.mtimeMs >= staleBefore) return false;
  await fsp.rm(p, { force: true });
  return true;
}

/**
 * Bytes and files in a folder (links counted, never followed). The broker's own files are not
 * counted: a live upload is covered by its reservation, and one left behind (untouched since
 * `staleBefore`, at any depth: older versions wrote them beside the target) is removed.
 */
export async function countFolder(dir: string, staleBefore: number): Promise<FolderTotals> {
  const t: FolderTotals = { usedBytes: 0, files: 0 };
  const walk = async (d: string): Promise<void> => {
    for (const e of await entries(d)) {
      if (e.name.startsWith(INTERNAL_PREFIX)) {
        await removeIfStale(d, e, staleBefore);
        continue;
      }
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const st = await fsp.lstat(p).catch(() => undefined);
        if (st) {
          t.usedBytes += st.size;
          t.files += 1;
        }
      }
    }
  };
  await walk(dir);
  return t;
}

/** Removes the stale upload temp files directly in a user's folder (where uploads write them). */
export async function removeStaleUploads(dir: string, staleBefore: number): Promise<number> {
  let n = 0;
  for (const e of await entries(dir)) if (await removeIfStale(dir, e, staleBefore)) n += 1;
  return n;
}
