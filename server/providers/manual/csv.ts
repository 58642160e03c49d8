// CSV import of machines (a lab of PCs): a header row naming the columns, then one machine a
// line. Columns are machineSpecSchema's fields (name, pool, protocol, address required; port,
// username, password, domain, security, ignoreCert, mac, agent optional). Fields may be
// double-quoted ("" inside quotes is a quote). Empty cells take the default.
import { z } from 'zod';
import { machineSpecSchema, type MachineSpec } from './machine.schema.ts';

export const CSV_COLUMNS = ['name', 'pool', 'protocol', 'address', 'port', 'username', 'password', 'domain', 'security', 'ignoreCert', 'mac', 'agent'] as const;
export const MAX_CSV_ROWS = 5000;

export interface CsvRow {
  line: number;
  spec?: MachineSpec;
  /** Why the line is not a valid machine (never echoes a password). */
  error?: { field: string; message: string };
}

/** Splits one CSV line (RFC 4180 quoting, no line breaks inside fields). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur === '') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

const bool = (v: string) => (/^(1|true|yes)$/i.test(v) ? true : /^(0|false|no)$/i.test(v) ? false : v);

export function parseMachinesCsv(text: string): { rows: CsvRow[] } | { error: string } {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? '').map((h) => h.trim());
  // The header is not echoed back (it may be anything): its position is.
  const unknown = header.findIndex((h) => !(CSV_COLUMNS as readonly string[]).includes(h));
  if (unknown >= 0) return { error: `the header's column ${unknown + 1} is not one of ${CSV_COLUMNS.join(', ')}` };
  for (const need of ['name', 'pool', 'protocol', 'address']) if (!header.includes(need)) return { error: `missing column "${need}"` };
  const rows: CsvRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (!lines[i]!.trim()) continue;
    if (rows.length >= MAX_CSV_ROWS) return { error: `more than ${MAX_CSV_ROWS} machines` };
    const cells = splitCsvLine(lines[i]!);
    const o: Record<string, unknown> = {};
    header.forEach((h, j) => {
      const v = cells[j] ?? '';
      if (v === '') return;
      o[h] = h === 'port' ? (/^\d+$/.test(v) ? Number(v) : v) : h === 'ignoreCert' || h === 'agent' ? bool(v) : v;
    });
    const r = machineSpecSchema.safeParse(o);
    if (r.success) rows.push({ line: i + 1, spec: r.data });
    else rows.push({ line: i + 1, error: issue(r.error) });
  }
  return { rows };
}

function issue(e: z.ZodError): { field: string; message: string } {
  const i = e.issues[0]!;
  return { field: i.path.map(String).join('.') || 'line', message: i.message };
}
