// The doctor's vocabulary: one result per check and target, a stable JSON report (docs/doctor.md).
import type { Config } from '../config/index.ts';
import type { Store } from '../store/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { ConsoleEndpoint } from '../providers/provider.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skipped';

export interface CheckResult {
  /** Stable id of the check (docs/doctor.md lists them all), e.g. "clock.replica". */
  id: string;
  /** What was checked: a host, desktop, pool, address... ("broker" for the broker itself). */
  target: string;
  status: CheckStatus;
  /** What is wrong (or right), in plain words. */
  message: string;
  /** How to fix it (only when not ok). */
  fix?: string;
  /** Measured values, for monitoring. */
  details?: Record<string, unknown>;
}

export interface DoctorReport {
  version: 1;
  ranAt: string;
  durationMs: number;
  summary: { ok: number; warn: number; fail: number };
  checks: CheckResult[];
}

/** What the guest says its clock is (qemu-guest-agent guest-get-time), ms since the epoch. */
export interface GuestClocks {
  guestTime(desktopId: string, timeoutMs: number): Promise<{ ms: number; at: number; via: string } | undefined>;
}

/** Everything the checks read. The API passes the running broker's parts; the CLI its own. */
export interface DoctorContext {
  config: Config;
  store: Store;
  providers: ProviderRegistry;
  /** Guest clocks through the agents (absent in the CLI: the agents' connections live in the broker). */
  guests?: GuestClocks;
  /**
   * A desktop's console endpoint without side effects where possible (address and port are
   * enough: passwords are only checked for presence, never returned).
   */
  consoleOf(desktop: { id: string; provider: string }): Promise<ConsoleEndpoint | undefined>;
  /** Per-check time limit, ms. */
  timeoutMs: number;
  now: () => number;
}

/** A family of checks: returns its results (a throw becomes one "fail" result for the family). */
export type CheckFamily = (ctx: DoctorContext) => Promise<CheckResult[]>;

export const ok = (id: string, target: string, message: string, details?: Record<string, unknown>): CheckResult => ({ id, target, status: 'ok', message, ...(details ? { details } : {}) });
export const warn = (id: string, target: string, message: string, fix: string, details?: Record<string, unknown>): CheckResult => ({ id, target, status: 'warn', message, fix, ...(details ? { details } : {}) });
export const fail = (id: string, target: string, message: string, fix: string, details?: Record<string, unknown>): CheckResult => ({ id, target, status: 'fail', message, fix, ...(details ? { details } : {}) });
export const skipped = (id: string, target: string, message: string, details?: Record<string, unknown>): CheckResult => ({ id, target, status: 'skipped', message, ...(details ? { details } : {}) });

/** Resolves with fn's value, or rejects after ms with a timeout error. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
      t.unref?.();
    }),
  ]);
}
