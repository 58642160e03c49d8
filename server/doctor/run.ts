// Runs every check family at once, each under a time limit, and builds the stable report.
import type { CheckFamily, CheckResult, DoctorContext, DoctorReport } from './types.ts';
import { fail, withTimeout } from './types.ts';
import { kvmChecks } from './kvm.ts';
import { clockChecks } from './clock.ts';
import { identityChecks } from './identity.ts';
import { reachabilityChecks } from './reachability.ts';
import { resourceChecks } from './resources.ts';
import { accessChecks } from './access.ts';

export const FAMILIES: Record<string, CheckFamily> = {
  kvm: kvmChecks,
  clock: clockChecks,
  identity: identityChecks,
  reach: reachabilityChecks,
  resources: resourceChecks,
  access: accessChecks,
};

const ORDER: Record<string, number> = { fail: 0, warn: 1, ok: 2, skipped: 3 };

export async function runDoctor(ctx: DoctorContext, o: { only?: string[] } = {}): Promise<DoctorReport> {
  const t0 = performance.now();
  const ranAt = new Date(ctx.now()).toISOString();
  // A family runs its own probes in parallel, each with ctx.timeoutMs; the family as a whole
  // gets a few of those (it may list hosts first, then probe).
  const familyLimit = Math.max(10_000, ctx.timeoutMs * 4);
  const names = Object.keys(FAMILIES).filter((n) => !o.only?.length || o.only.includes(n));
  const results = await Promise.all(names.map(async (name): Promise<CheckResult[]> => {
    try {
      return await withTimeout(FAMILIES[name]!(ctx), familyLimit, `the ${name} checks`);
    } catch (e) {
      return [fail(`${name}.error`, 'doctor', `the ${name} checks could not run: ${(e as Error).message}`, 'See the broker log; a dependency (Redis, a provider) may be down.')];
    }
  }));
  const checks = results.flat().sort((a, b) => a.id.localeCompare(b.id) || ORDER[a.status]! - ORDER[b.status]! || a.target.localeCompare(b.target));
  const summary = { ok: 0, warn: 0, fail: 0 };
  for (const c of checks) if (c.status !== 'skipped') summary[c.status]++;
  return { version: 1, ranAt, durationMs: Math.round(performance.now() - t0), summary, checks };
}

/** The human table the CLI prints by default. */
export function formatReport(r: DoctorReport, color = false): string {
  const paint = (s: string, code: number) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const mark: Record<string, string> = { ok: paint('OK  ', 32), warn: paint('WARN', 33), fail: paint('FAIL', 31), skipped: paint('SKIP', 90) };
  const idW = Math.min(26, Math.max(...r.checks.map((c) => c.id.length), 5));
  const tgW = Math.min(30, Math.max(...r.checks.map((c) => c.target.length), 6));
  const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));
  const lines = [`${'    '}  ${pad('check', idW)}  ${pad('target', tgW)}  message`];
  for (const c of r.checks) {
    lines.push(`${mark[c.status]}  ${pad(c.id, idW)}  ${pad(c.target, tgW)}  ${c.message}`);
    if (c.fix && c.status !== 'ok') lines.push(`${' '.repeat(idW + tgW + 10)}fix: ${c.fix}`);
  }
  lines.push('', `${r.summary.fail} failed, ${r.summary.warn} warnings, ${r.summary.ok} ok (${r.checks.filter((c) => c.status === 'skipped').length} skipped) in ${r.durationMs} ms`);
  return lines.join('\n') + '\n';
}
