import { z } from 'zod';
import type { RouteTable } from './route.ts';
import { runDoctor, type DoctorContext } from '../doctor/index.ts';

const families = z.enum(['kvm', 'clock', 'identity', 'reach', 'resources', 'access']);
const doctorQuery = z.strictObject({
  /** Comma-separated families to run (default: all). */
  only: z.string().max(100).optional().transform((s, ctx) => {
    if (!s) return undefined;
    const parts = s.split(',').map((x) => x.trim()).filter(Boolean);
    for (const p of parts) {
      if (!families.safeParse(p).success) {
        ctx.addIssue({ code: 'custom', message: `unknown family "${p}" (kvm, clock, identity, reach, resources, access)` });
        return z.NEVER;
      }
    }
    return parts;
  }),
});

/** The doctor (docs/doctor.md): admins only (it names hosts, addresses and configuration files). */
export function doctorRoutes(t: RouteTable, context: () => DoctorContext): void {
  t.add({
    method: 'get', path: '/doctor', tag: 'meta', role: 'admin', query: doctorQuery,
    summary: 'Run every health check (KVM, clocks, identity collisions, reachability, resources, access) in parallel: {version, ranAt, durationMs, summary, checks[]}',
    handler: async ({ query }) => runDoctor(context(), query.only ? { only: query.only } : {}),
  });
}
