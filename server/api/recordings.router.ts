// Session recordings (docs/recordings.md): the tunnel records pools whose policy says so; the
// helpdesk lists and plays them, an admin deletes them. Every play/download and delete is audited.
import { createReadStream } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { BrokerError } from '../errors.ts';
import { poolName, username } from '../broker/index.ts';
import type { Recording } from '../store/index.ts';

const recordingParams = z.strictObject({ id: z.uuid('expected a recording id') });
const time = z.iso.datetime({ offset: true }).transform((s) => Date.parse(s));

export const recordingsQuery = z.strictObject({
  user: username.optional(),
  desktop: z.uuid('expected a desktop id').optional(),
  pool: poolName.optional(),
  session: z.uuid('expected a session id').optional(),
  since: time.optional(),
  until: time.optional(),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export const recordingView = z.object({
  id: z.string(), session: z.string(), user: z.string(), desktop: z.string(), pool: z.string(), policy: z.string(),
  startedAt: z.string(), endedAt: z.string().nullable(), durationMs: z.number().nullable(), bytes: z.number(),
});

/** What the API shows of a recording (never the file's path). */
function view(r: Recording): z.infer<typeof recordingView> {
  return {
    id: r.id, session: r.session, user: r.user, desktop: r.desktop, pool: r.pool, policy: r.policy,
    startedAt: new Date(r.startedAt).toISOString(), endedAt: r.endedAt === null ? null : new Date(r.endedAt).toISOString(),
    durationMs: r.endedAt === null ? null : Math.max(0, r.endedAt - r.startedAt), bytes: r.bytes,
  };
}

export function recordingRoutes(t: RouteTable, { broker, recordings }: ApiDeps): void {
  const store = { recordings };
  const find = async (id: string): Promise<Recording> => {
    const r = await store.recordings.get(id);
    if (!r) throw new BrokerError('not_found', 'No such recording.');
    return r;
  };

  t.add({
    method: 'get', path: '/recordings', tag: 'recordings', role: 'helpdesk', query: recordingsQuery,
    summary: 'Session recordings, newest first, filtered by user, desktop, pool, session and start time (since/until), paginated (offset, limit)',
    response: z.object({ recordings: z.array(recordingView), total: z.number(), offset: z.number(), limit: z.number() }),
    handler: async ({ query }) => {
      const { recordings, total } = await store.recordings.list(query);
      return { recordings: recordings.map(view), total, offset: query.offset, limit: query.limit };
    },
  });
  t.add({
    method: 'get', path: '/recordings/:id', tag: 'recordings', role: 'helpdesk', params: recordingParams, errors: ['not_found'],
    summary: 'One recording\'s index entry', response: recordingView,
    handler: async ({ params }) => view(await find(params.id)),
  });
  t.add({
    method: 'get', path: '/recordings/:id/file', tag: 'recordings', role: 'helpdesk', params: recordingParams, errors: ['not_found'],
    query: z.strictObject({ download: z.enum(['0', '1']).optional() }),
    summary: 'The recording itself: the Guacamole instruction stream (application/octet-stream) that guacamole-common-js\'s Guacamole.SessionRecording plays; download=1 as an attachment. Audited as recording.play / recording.download',
    handler: async ({ params, query, actor, res }) => {
      const r = await find(params.id);
      const download = query.download === '1';
      const action = download ? 'recording.download' : 'recording.play';
      const target = { type: 'recording', id: r.id };
      const st = r.file ? await stat(r.file).catch(() => null) : null;
      if (!st?.isFile()) {
        await broker.audit.record(actor, action, target, { session: r.session, user: r.user, reason: 'file missing' }, 'failed');
        throw new BrokerError('not_found', 'The recording\'s file is not on this broker (recordings.dir must be shared by all replicas).');
      }
      await broker.audit.record(actor, action, target, { session: r.session, user: r.user, desktop: r.desktop, pool: r.pool, bytes: st.size });
      res.status(200).set({
        'content-type': 'application/octet-stream',
        'content-length': String(st.size),
        'cache-control': 'private, no-store',
        ...(download ? { 'content-disposition': `attachment; filename="recording-${r.id}.guac"` } : {}),
      });
      await pipeline(createReadStream(r.file, { start: 0, end: Math.max(0, st.size - 1) }), res);
      return undefined;
    },
  });
  t.add({
    method: 'delete', path: '/recordings/:id', tag: 'recordings', role: 'admin', params: recordingParams, errors: ['not_found'],
    summary: 'Delete a recording (file and index entry; audited)', status: 204,
    handler: async ({ params, actor }) => {
      const r = await find(params.id);
      if (r.file) {
        await unlink(r.file).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      await store.recordings.remove(r.id);
      await broker.audit.record(actor, 'recording.delete', { type: 'recording', id: r.id }, { session: r.session, user: r.user, desktop: r.desktop, pool: r.pool, bytes: r.bytes });
      return undefined;
    },
  });
}
