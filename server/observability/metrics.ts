import { Counter, Histogram, Registry, collectDefaultMetrics, Gauge } from 'prom-client';

/** The broker's Prometheus metrics, one registry per broker instance (tests build several). */
export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: 'vdi_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly httpLean = new Counter({
    name: 'vdi_http_lean_requests_total',
    help: 'API requests served by the lean lane (logged-in callers of routes that leave the HTTP session alone), of all in vdi_http_request_duration_seconds',
    registers: [this.registry],
  });
  readonly assignments = new Counter({
    name: 'vdi_assignments_total',
    help: 'Desktop requests by pool and outcome',
    labelNames: ['pool', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly reconcileRuns = new Counter({
    name: 'vdi_reconcile_runs_total',
    help: 'Reconciler passes by job and result',
    labelNames: ['job', 'result'] as const,
    registers: [this.registry],
  });
  readonly desktopOperations = new Histogram({
    name: 'vdi_desktop_operation_seconds',
    help: 'Provider operations by kind and result',
    labelNames: ['operation', 'result'] as const,
    buckets: [0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly desktopsByState = new Gauge({
    name: 'vdi_desktops',
    help: 'Desktops by pool and state (sampled at scrape)',
    labelNames: ['pool', 'state'] as const,
    registers: [this.registry],
  });
  /** The logon timeline (server/broker/session.service.ts): one observation per session and phase. */
  readonly logonPhase = new Histogram({
    name: 'vdi_logon_phase_seconds',
    help: 'Logon timeline phases of sessions (authentication, assignment, desktop_ready, home_mapped, tunnel_connected, first_frame, guest_logon)',
    labelNames: ['phase'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120],
    registers: [this.registry],
  });
  readonly logonClickToUsable = new Histogram({
    name: 'vdi_logon_click_to_usable_seconds',
    help: 'From the Launch click until the desktop was usable (first frame drawn and, with the guest agent, the logon done)',
    buckets: [0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 10, 20, 40, 90],
    registers: [this.registry],
  });

  /** Guest agent channel (server/agent): what the guests sent that was refused, and why. */
  readonly agentMessagesDropped = new Counter({
    name: 'vdi_agent_messages_dropped_total',
    help: 'Messages from guest agents dropped (oversized, invalid_utf8, malformed, version, unknown_type, unauthenticated, wrong_desktop, bad_proof, unknown_nonce, unexpected_result)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly desktopTimeToReady = new Histogram({
    name: 'vdi_desktop_time_to_ready_seconds',
    help: 'From the start of a provisioning/refresh until the guest said it is up (agent hello, qga ping, or console + boot grace)',
    labelNames: ['via'] as const,
    buckets: [1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180],
    registers: [this.registry],
  });
  readonly agentsConnected = new Gauge({
    name: 'vdi_agents_connected',
    help: 'Guest agents this replica holds a proven connection to, by kind (vdi, qga)',
    labelNames: ['via'] as const,
    registers: [this.registry],
  });

  /** Each pool's configured spare count (sampled at scrape), for "out of spares" alerts. */
  readonly poolSparesTarget = new Gauge({
    name: 'vdi_pool_spares_target',
    help: 'Ready desktops each pool keeps for new users (its size.spare), sampled at scrape',
    labelNames: ['pool'] as const,
    registers: [this.registry],
  });
  /** Logins by authenticator (local, ldap, oidc, apikey…) and outcome (ok, bad_credentials, throttled, mfa_required, error…). */
  readonly logins = new Counter({
    name: 'vdi_logins_total',
    help: 'Login attempts by authenticator and outcome',
    labelNames: ['authenticator', 'outcome'] as const,
    registers: [this.registry],
  });
  /** The assignment decision (the atomic script and what the service does around it), per pool. */
  readonly assignmentDuration = new Histogram({
    name: 'vdi_assignment_duration_seconds',
    help: 'Time to decide a desktop request (reuse, spare, clone or refusal), by pool',
    labelNames: ['pool'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  /** Round trip of a Redis PING from this replica, sampled every few seconds. */
  readonly redisLatency = new Histogram({
    name: 'vdi_redis_latency_seconds',
    help: 'Round trip of a Redis PING from this replica (sampled)',
    buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly redisUp = new Gauge({
    name: 'vdi_redis_up',
    help: '1 when the last sampled Redis PING answered, 0 when it failed or timed out',
    registers: [this.registry],
  });
  /** Guacamole sync round trip of live tunnels (how responsive the stream feels to users). */
  readonly tunnelRtt = new Histogram({
    name: 'vdi_tunnel_rtt_seconds',
    help: 'Round trip of the Guacamole sync instruction through live tunnels',
    buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly buildInfo = new Gauge({
    name: 'vdi_build_info',
    help: 'Always 1; the broker version as a label',
    labelNames: ['version'] as const,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
