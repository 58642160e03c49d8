// Folder names derived from user ids, and the checks on paths users send to the files API.
// Nothing here touches the disk except resolveInHome, which walks the path with lstat.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { BrokerError } from '../errors.ts';

/** Plain ids: lower-case letters, digits, _ - and single inner dots (no leading/trailing dot, no ".."). */
const PLAIN = /^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9_-]+)*$/;
/** Names Windows (and so SMB clients) cannot use as a folder. */
const WINDOWS_RESERVED = /^(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\..*)?$/;

/**
 * The folder name of a user on a share. User ids are already lower-case; a plain id is its own
 * folder name (so SMB's `path = <root>/%U` finds it), anything else (a reserved Windows name,
 * odd characters) becomes "~" + hex of its UTF-8 bytes. "~" never starts a plain name, so the
 * mapping is injective, and the result never contains "/", "..", NUL or upper case.
 */
export function folderName(userId: string): string {
  if (userId.length >= 1 && userId.length <= 64 && PLAIN.test(userId) && !WINDOWS_RESERVED.test(userId)) return userId;
  const hex = Buffer.from(userId, 'utf8').toString('hex');
  if (hex.length === 0 || hex.length > 250) throw new Error(`user id of ${userId.length} characters cannot name a folder`);
  return `~${hex}`;
}

export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 1024;
export const MAX_DEPTH = 32;
/** Names the broker itself uses inside users' folders (upload temp files, health probes). */
export const INTERNAL_PREFIX = '.vdi-';
/** Upload temp files: always directly in the user's folder (so a sweep reads one directory per user). */
export const UPLOAD_PREFIX = `${INTERNAL_PREFIX}upload-`;
// Control characters and what Windows/SMB clients cannot store: \ : * ? " < > |
const BAD_CHARS = /[\u0000-\u001f\u007f\\:*?"<>|]/;

const bad = (message: string) => new BrokerError('bad_path', message, { field: 'path' });

/**
 * Splits a user-supplied path relative to their folder into checked names. '' is the folder
 * itself (only where allowRoot). Refused with bad_path: absolute paths, "." and ".." parts,
 * empty parts ("a//b", trailing "/"), NUL and control characters, \ : * ? " < > |, names over
 * 255 bytes or ending in a dot or space, paths over 1024 bytes or 32 levels, and names starting
 * with ".vdi-" (the broker's own).
 */
export function splitUserPath(p: string, field = 'path', allowRoot = false): string[] {
  const fail = (m: string) => new BrokerError('bad_path', m, { field });
  if (typeof p !== 'string') throw fail('The path must be a string.');
  if (p === '') {
    if (allowRoot) return [];
    throw fail('A file or folder name is required.');
  }
  if (Buffer.byteLength(p, 'utf8') > MAX_PATH_BYTES) throw fail(`The path is longer than ${MAX_PATH_BYTES} bytes.`);
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) throw fail('The path must be relative to your folder.');
  const parts = p.split('/');
  if (parts.length > MAX_DEPTH) throw fail(`The path is deeper than ${MAX_DEPTH} folders.`);
  for (const name of parts) {
    if (name === '') throw fail('The path has an empty part.');
    if (name === '.' || name === '..') throw fail('The path may not contain "." or "..".');
    if (BAD_CHARS.test(name)) throw fail('A name contains a control character or one of \\ : * ? " < > |.');
    if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) throw fail(`A name is longer than ${MAX_NAME_BYTES} bytes.`);
    if (/[. ]$/.test(name)) throw fail('A name may not end with a dot or a space.');
    if (name.startsWith(INTERNAL_PREFIX)) throw fail(`Names starting with ${INTERNAL_PREFIX} are reserved.`);
  }
  return parts;
}

export interface ResolvedPath {
  /** Absolute path on the broker host. */
  abs: string;
  /** The checked names, relative to the home folder. */
  parts: string[];
  /** lstat of the target, or undefined when it does not exist. */
  stat: import('node:fs').Stats | undefined;
}

/**
 * Resolves a checked path inside `home` without following symbolic links: every existing part
 * is lstat'ed; a link anywhere (even one pointing inside the folder) is bad_path, a file in
 * the middle of the path is bad_path, a missing parent is not_found.
 */
export async function resolveInHome(home: string, p: string, opts: { field?: string; allowRoot?: boolean } = {}): Promise<ResolvedPath> {
  const field = opts.field ?? 'path';
  const parts = splitUserPath(p, field, opts.allowRoot);
  let cur = home;
  let st = await fsp.lstat(home);
  if (!st.isDirectory()) throw new BrokerError('share_unavailable', 'Your folder is not a folder on the share.');
  for (let i = 0; i < parts.length; i++) {
    cur = path.join(cur, parts[i]!);
    let next: import('node:fs').Stats | undefined;
    try {
      next = await fsp.lstat(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      if (i < parts.length - 1) throw new BrokerError('not_found', `No folder ${parts.slice(0, i + 1).join('/')}.`, { field });
      return { abs: cur, parts, stat: undefined };
    }
    if (next.isSymbolicLink()) throw new BrokerError('bad_path', 'The path goes through a symbolic link; links are never followed.', { field });
    if (i < parts.length - 1 && !next.isDirectory()) throw new BrokerError('bad_path', `${parts.slice(0, i + 1).join('/')} is not a folder.`, { field });
    st = next;
  }
  return { abs: cur, parts, stat: st };
}
