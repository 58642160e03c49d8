// The user's own files (their folder on the file share), and the helpdesk's view of shares
// and usage. Paths travel in the query string, always relative to the user's folder; every
// one is checked by server/shares (bad_path). Uploads are the raw request body, streamed.
import { z } from 'zod';
import { pipeline } from 'node:stream/promises';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { BrokerError } from '../errors.ts';
import type { Share } from '../shares/index.ts';
import { userParams } from './schemas.ts';

// Loose on purpose: the path rules (and their bad_path answers) live in server/shares/names.ts.
const text = z.string().max(65_536);
const flag = z.enum(['true', 'false']).default('false').transform((v) => v === 'true');
const shareName = z.string().max(64).optional();
const pathQuery = z.strictObject({ path: text, share: shareName });
const listQuery = z.strictObject({ path: text.default(''), share: shareName });
const uploadQuery = z.strictObject({ path: text, overwrite: flag, share: shareName });
const renameQuery = z.strictObject({ path: text, to: text, share: shareName });
const deleteQuery = z.strictObject({ path: text, recursive: flag, share: shareName });
const shareQuery = z.strictObject({ share: shareName });

const FILE_ERRORS = ['bad_path', 'not_found', 'share_unavailable'] as const;

/** RFC 6266 attachment header with a UTF-8 name and an ASCII fallback. */
function attachment(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export function filesRoutes(t: RouteTable, { files, shares, identity }: ApiDeps): void {
  const pick = (name: string | undefined): Share | undefined => {
    if (name === undefined) return undefined;
    const s = shares.get(name);
    if (!s) throw new BrokerError('not_found', `No share named "${name}".`, { field: 'share' });
    return s;
  };

  t.add({
    method: 'get', path: '/me/files', tag: 'files', role: 'user', query: listQuery, errors: [...FILE_ERRORS],
    summary: 'List a folder of my files (path relative to my folder; empty = my folder). Works without a desktop.',
    handler: async ({ actor, query }) => files.list(actor, query.path, pick(query.share)),
  });
  t.add({
    method: 'get', path: '/me/files/content', tag: 'files', role: 'user', query: pathQuery, errors: [...FILE_ERRORS],
    summary: 'Download one of my files (application/octet-stream, as an attachment)',
    handler: async ({ actor, query, res }) => {
      const f = await files.open(actor, query.path, pick(query.share));
      res.status(200).set({ 'content-type': 'application/octet-stream', 'content-length': String(f.size), 'content-disposition': attachment(f.name), 'cache-control': 'private, no-store' });
      await pipeline(f.stream, res);
      return undefined;
    },
  });
  t.add({
    method: 'put', path: '/me/files/content', tag: 'files', role: 'user', query: uploadQuery, status: 201,
    errors: [...FILE_ERRORS, 'already_exists', 'conflict', 'quota_exceeded', 'payload_too_large', 'not_ready'],
    summary: 'Upload a file: the raw request body (any content type but JSON), streamed; limited to shares.maxUploadBytes and my hard quota (room is reserved before bytes are written, also without Content-Length). overwrite=true replaces a file. 503 not_ready when the broker shuts down mid-upload (nothing is kept).',
    handler: async ({ actor, query, req }) => {
      const len = req.headers['content-length'];
      const declared = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
      const r = await files.upload(actor, query.path, req, { overwrite: query.overwrite, share: pick(query.share), ...(declared !== undefined ? { declaredBytes: declared } : {}) });
      return { file: r };
    },
  });
  t.add({
    method: 'post', path: '/me/files/folder', tag: 'files', role: 'user', query: pathQuery, status: 201, errors: [...FILE_ERRORS, 'already_exists'],
    summary: 'Make a folder in my files',
    handler: async ({ actor, query }) => ({ folder: await files.mkdir(actor, query.path, pick(query.share)) }),
  });
  t.add({
    method: 'post', path: '/me/files/rename', tag: 'files', role: 'user', query: renameQuery, errors: [...FILE_ERRORS, 'already_exists'],
    summary: 'Rename or move one of my files or folders (path -> to, both relative to my folder)',
    handler: async ({ actor, query }) => ({ file: await files.rename(actor, query.path, query.to, pick(query.share)) }),
  });
  t.add({
    method: 'delete', path: '/me/files', tag: 'files', role: 'user', query: deleteQuery, errors: [...FILE_ERRORS, 'conflict'],
    summary: 'Delete one of my files, or a folder (recursive=true for one that is not empty)',
    handler: async ({ actor, query }) => {
      await files.remove(actor, query.path, query.recursive, pick(query.share));
      return undefined;
    },
  });
  t.add({
    method: 'get', path: '/me/files/usage', tag: 'files', role: 'user', query: shareQuery, errors: [...FILE_ERRORS],
    summary: 'My storage use against my soft and hard quota',
    handler: async ({ actor, query }) => ({ usage: await files.usage(actor, pick(query.share)) }),
  });
  t.add({
    method: 'get', path: '/users/:id/files/usage', tag: 'files', role: 'helpdesk', params: userParams, errors: ['not_found'],
    summary: "A user's storage use on every share, against their quotas",
    handler: async ({ params }) => {
      if (!(await identity.getUser(params.id))) throw new BrokerError('not_found', `No user ${params.id}.`);
      return { usage: await Promise.all(shares.shares.map((s) => shares.usage(s, params.id))) };
    },
  });
  t.add({
    method: 'get', path: '/shares', tag: 'files', role: 'helpdesk',
    summary: 'File shares with their roots, UNC paths, quotas and health (a fresh write probe; last failure)',
    handler: async () => ({ shares: await shares.describe() }),
  });
}
