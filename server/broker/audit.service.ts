import type { AuditFilter, AuditRepository, AuditEntry } from '../store/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Principal } from './model.ts';

/** Who did something and from where; every state-changing call carries one. */
export interface Actor {
  principal: Principal | null;
  address: string;
}

export const SYSTEM_ACTOR: Actor = { principal: { kind: 'user', id: 'system', role: 'admin', groups: [] }, address: '' };

export function actorName(a: Actor): string {
  if (!a.principal) return 'anonymous';
  return a.principal.kind === 'apikey' ? `apikey:${a.principal.id}` : a.principal.id;
}

export class AuditService {
  constructor(private readonly repo: AuditRepository, private readonly logger: Logger) {}

  /**
   * Writes one entry. An audit write failure is logged, not thrown: the action it records has
   * already happened, and failing the request would suggest otherwise.
   */
  async record(
    actor: Actor,
    action: string,
    target: { type: string; id: string },
    details: Record<string, unknown> = {},
    outcome: AuditEntry['outcome'] = 'ok',
  ): Promise<void> {
    try {
      await this.repo.append({
        actor: actorName(actor),
        role: actor.principal?.role ?? '',
        action,
        targetType: target.type,
        target: target.id,
        address: actor.address,
        outcome,
        details,
      });
    } catch (err) {
      this.logger.error({ err: (err as Error).message, action, target }, 'audit write failed');
    }
  }

  query(f: AuditFilter) {
    return this.repo.query(f);
  }
}
