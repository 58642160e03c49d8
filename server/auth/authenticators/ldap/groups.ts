// Directory groups → broker group ids, and groupOfNames nesting the broker expands itself.
import type { Client, Entry } from 'ldapts';
import { escapeFilterValue } from './filter.ts';

const BROKER_GROUP = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** Most groups one user may bring (the rest are ignored, with a log line by the caller). */
export const MAX_GROUPS = 500;

/** The broker group id for a directory group name: mapped, or lower-cased with other characters as '-'; null = ignored. */
export function brokerGroupOf(name: string, o: { map: Record<string, string>; onlyMapped: boolean }): string | null {
  if (Object.hasOwn(o.map, name)) return o.map[name]!;
  if (o.onlyMapped) return null;
  const id = name.normalize('NFKC').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 63);
  return BROKER_GROUP.test(id) ? id : null;
}

export function attr(entry: Entry, name: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  const v = key === undefined ? undefined : entry[key];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

/**
 * The groups that contain `start` groups, up to `depth` levels up, breadth first; every group
 * is visited once (cycles end), and at most MAX_GROUPS are collected.
 */
export async function expandNested(client: Client, baseDn: string, start: Entry[], depth: number, nameAttribute: string, timeLimitSeconds: number): Promise<Entry[]> {
  const seen = new Map<string, Entry>(start.map((e) => [e.dn.toLowerCase(), e]));
  let frontier = start.map((e) => e.dn);
  for (let level = 0; level < depth && frontier.length && seen.size < MAX_GROUPS; level++) {
    const next: string[] = [];
    for (let i = 0; i < frontier.length; i += 50) {
      const ors = frontier.slice(i, i + 50).map((dn) => `(member=${escapeFilterValue(dn)})(uniqueMember=${escapeFilterValue(dn)})`).join('');
      const { searchEntries } = await client.search(baseDn, { scope: 'sub', filter: `(|${ors})`, attributes: [nameAttribute], sizeLimit: MAX_GROUPS, timeLimit: timeLimitSeconds });
      for (const g of searchEntries) {
        const k = g.dn.toLowerCase();
        if (seen.has(k)) continue;
        seen.set(k, g);
        next.push(g.dn);
      }
    }
    frontier = next;
  }
  return [...seen.values()].slice(0, MAX_GROUPS);
}
