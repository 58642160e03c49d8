// Deletes session recordings older than recordings.retentionDays: the file and its index entry
// (docs/recordings.md). Runs under its own Redis lease like every reconciler; files in
// recordings.dir that no index entry names (a replica that lost Redis while recording) go too
// once they are that old.
import { readdir, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Store } from '../store/index.ts';
import { SYSTEM_ACTOR, type AuditService } from '../broker/index.ts';
import type { JobContext } from './runner.ts';

const DAY_MS = 86_400_000;
/** At most this many recordings are deleted per pass (the next pass continues). */
const BATCH = 500;

export class RecordingRetention {
  constructor(private readonly store: Store, private readonly audit: AuditService, private readonly o: { dir: string; retentionDays: number }) {}

  async run(ctx: JobContext): Promise<void> {
    const cutoff = ctx.now - this.o.retentionDays * DAY_MS;
    const deleted: string[] = [];
    for (const id of await this.store.recordings.startedBefore(cutoff, BATCH)) {
      if (!ctx.holdsLease()) break;
      const r = await this.store.recordings.get(id);
      // Still being written: only a recording a day past retention (its broker died) is dropped.
      if (r && r.endedAt === null && r.startedAt > cutoff - DAY_MS) continue;
      if (r?.file) await removeFile(r.file);
      if (await this.store.recordings.remove(id)) deleted.push(id);
    }
    let orphans = 0;
    const dir = resolve(this.o.dir);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!ctx.holdsLease()) break;
      const m = /^([0-9a-f-]{36})\.guac$/.exec(name);
      if (!m) continue;
      const file = join(dir, name);
      const st = await stat(file).catch(() => null);
      if (!st || st.mtimeMs >= cutoff) continue;
      if (await this.store.recordings.get(m[1]!)) continue;
      await removeFile(file);
      orphans++;
    }
    if (deleted.length || orphans) {
      ctx.logger.info({ deleted: deleted.length, orphans }, 'old recordings deleted');
      await this.audit.record(SYSTEM_ACTOR, 'recording.expire', { type: 'recording', id: deleted.length === 1 ? deleted[0]! : '' }, { count: deleted.length, ids: deleted.slice(0, 50), orphanFiles: orphans, retentionDays: this.o.retentionDays });
    }
  }
}

async function removeFile(file: string): Promise<void> {
  await unlink(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
