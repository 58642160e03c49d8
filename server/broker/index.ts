import type { Store } from '../store/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { Logger, Metrics } from '../observability/index.ts';
import { AuditService } from './audit.service.ts';
import { PoolService } from './pool.service.ts';
import { AssignmentService } from './assignment.service.ts';
import { SessionService } from './session.service.ts';
import { DesktopService } from './desktop.service.ts';
import { ImageService } from './image.service.ts';
import { HostService } from './host.service.ts';

export * from './model.ts';
export * from './state-machine.ts';
export { SYSTEM_ACTOR, actorName, type Actor } from './audit.service.ts';
export type { AuditService, AuditedCall, PreparedAuditEntry, Refusal } from './audit.service.ts';
export { trackAuditedCall } from './audit.service.ts';
export type { PoolService, PoolView } from './pool.service.ts';
export type { AssignmentService, DesktopRequestResult, HomeHook } from './assignment.service.ts';
export type { SessionService, SessionFilter, GuestMessenger, SessionMessage } from './session.service.ts';
export type { DesktopService, DesktopFilter } from './desktop.service.ts';
export type { ImageService, ImageView } from './image.service.ts';
export type { HostService, HostView } from './host.service.ts';

/** The broker's domain services, wired to one store and one set of providers. */
export class Broker {
  readonly audit: AuditService;
  readonly pools: PoolService;
  readonly assignment: AssignmentService;
  readonly sessions: SessionService;
  readonly desktops: DesktopService;
  readonly images: ImageService;
  readonly hosts: HostService;

  constructor(deps: { store: Store; providers: ProviderRegistry; logger: Logger; metrics: Metrics; now?: () => number }) {
    const now = deps.now ?? Date.now;
    this.audit = new AuditService(deps.store.audit, deps.logger, (action, outcome, details) => {
      if (action !== 'auth.login') return;
      const authenticator = typeof details.authenticator === 'string' ? details.authenticator : 'unknown';
      const why = typeof details.code === 'string' ? details.code : typeof details.reason === 'string' ? details.reason : outcome;
      deps.metrics.logins.inc({ authenticator, outcome: outcome === 'ok' ? 'ok' : why });
    });
    this.images = new ImageService(deps.store, this.audit);
    this.pools = new PoolService(deps.store, deps.providers, this.audit, this.images, now);
    this.assignment = new AssignmentService(deps.store, this.audit, deps.metrics, now);
    this.sessions = new SessionService(deps.store, this.audit, now, deps.metrics);
    this.desktops = new DesktopService(deps.store, deps.providers, this.audit, deps.logger, now);
    this.hosts = new HostService(deps.store, deps.providers, this.desktops, this.audit, deps.logger);
  }
}
