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

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
