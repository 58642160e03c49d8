import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

export interface AuditEntry {
  id: string;
  at: string;
  actor: string;
  role: string;
  action: string;
  targetType: string;
  target: string;
  address: string;
  outcome: 'ok' | 'denied' | 'failed';
  details: Record<string, unknown>;
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  targetType?: string;
  target?: string;
  outcome?: string;
  /** Case-insensitive substring of actor, action, target, address or details (the helpdesk's search box). */
  q?: string;
  since?: number;
  until?: number;
  /** Continue after this entry id (older entries). */
  before?: string;
  limit: number;
}

/** An entry's fields as the stream holds them, but its details (JSON). */
function fieldsOf(e: Omit<AuditEntry, 'id' | 'at' | 'details'>): string[] {
  return ['actor', e.actor, 'role', e.role, 'action', e.action, 'targetType', e.targetType, 'target', e.target, 'address', e.address, 'outcome', e.outcome];
}

/** The audit trail: one Redis stream, newest last, trimmed to about maxEntries. */
export class AuditRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace, private readonly maxEntries: number) {}

  async append(e: Omit<AuditEntry, 'id' | 'at'>): Promise<string> {
    const [maxlen, ...fv] = this.entryArgs(e);
    const id = await this.redis.xadd(this.k.audit, 'MAXLEN', '~', maxlen!, '*', ...fv);
    return id ?? '';
  }

  /**
   * A whole entry for a store script that writes it beside other bookkeeping (one command
   * instead of two): the stream's length bound, then the field/value pairs `append` writes.
   */
  entryArgs(e: Omit<AuditEntry, 'id' | 'at'>): string[] {
    return [...this.scriptArgs(e), 'details', JSON.stringify(e.details)];
  }

  /**
   * An entry for a store script to write with the change it records, atomically (prelude.lua
   * audit_append): the stream's length bound, then append()'s field/value pairs but the
   * details, which the script adds from what it did.
   */
  scriptArgs(e: Omit<AuditEntry, 'id' | 'at' | 'details'>): string[] {
    return [String(this.maxEntries), ...fieldsOf(e)];
  }

  /** Newest first. Reads in pages from the end of the stream until `limit` entries match. */
  async query(f: AuditFilter): Promise<{ entries: AuditEntry[]; next: string | null }> {
    const out: AuditEntry[] = [];
    let end = f.before ? `(${f.before}` : f.until !== undefined ? String(f.until) : '+';
    const start = f.since !== undefined ? String(f.since) : '-';
    const pageSize = 500;
    // Bounded: at most 40 pages (20,000 entries) scanned per request.
    for (let page = 0; page < 40 && out.length < f.limit; page++) {
      const rows = await this.redis.xrevrange(this.k.audit, end, start, 'COUNT', pageSize);
      for (const [id, kv] of rows) {
        const h: Record<string, string> = {};
        for (let i = 0; i < kv.length; i += 2) h[kv[i]!] = kv[i + 1]!;
        const e: AuditEntry = {
          id,
          at: new Date(Number(id.split('-')[0])).toISOString(),
          actor: h.actor ?? '',
          role: h.role ?? '',
          action: h.action ?? '',
          targetType: h.targetType ?? '',
          target: h.target ?? '',
          address: h.address ?? '',
          outcome: (h.outcome ?? 'ok') as AuditEntry['outcome'],
          details: h.details ? (JSON.parse(h.details) as Record<string, unknown>) : {},
        };
        if (f.actor && e.actor !== f.actor) continue;
        if (f.action && !e.action.startsWith(f.action)) continue;
        if (f.targetType && e.targetType !== f.targetType) continue;
        if (f.target && e.target !== f.target) continue;
        if (f.outcome && e.outcome !== f.outcome) continue;
        if (f.q && ![e.actor, e.action, e.targetType, e.target, e.address, h.details ?? ''].join('\n').toLowerCase().includes(f.q.toLowerCase())) continue;
        out.push(e);
        if (out.length >= f.limit) return { entries: out, next: e.id };
      }
      if (rows.length < pageSize) return { entries: out, next: null };
      end = `(${rows[rows.length - 1]![0]}`;
    }
    return { entries: out, next: out.length ? out[out.length - 1]!.id : null };
  }
}
