import { test } from 'node:test';
import assert from 'node:assert/strict';
import { timeoutReason, backoffMs } from '../../server/jobs/index.ts';
import type { Session } from '../../server/broker/index.ts';

const policy = (o: Partial<{ idleTimeoutSeconds: number; logoffAfterDisconnectSeconds: number; maxSessionSeconds: number }> = {}) => ({
  sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 60, maxSessionSeconds: 0, ...o },
});
const session = (o: Partial<Session>): Session => ({
  id: 's', user: 'u', desktop: 'd', pool: 'p', state: 'connected', clientAddress: '', createdAt: 0, connectedAt: 0,
  disconnectedAt: 0, lastActivityAt: 0, endedAt: 0, endReason: '', bytesIn: 0, bytesOut: 0, connectedMs: 0, tunnels: 0, ...o,
});

test('disconnect timer runs from the disconnect', () => {
  assert.equal(timeoutReason(session({ state: 'disconnected', disconnectedAt: 1000 }), policy(), null, 60_000), null);
  assert.equal(timeoutReason(session({ state: 'disconnected', disconnectedAt: 1000 }), policy(), null, 61_001), 'disconnected too long');
});

test('a session that never connected is ended only after its desktop was usable for the timeout', () => {
  const s = session({ state: 'starting', createdAt: 0 });
  assert.equal(timeoutReason(s, policy(), { state: 'provisioning', stateSince: 0 }, 1e9), null, 'still being built');
  assert.equal(timeoutReason(s, policy(), { state: 'in_use', stateSince: 50_000 }, 100_000), null);
  assert.equal(timeoutReason(s, policy(), { state: 'in_use', stateSince: 50_000 }, 110_001), 'never connected');
});

test('idle and maximum length', () => {
  assert.equal(timeoutReason(session({ lastActivityAt: 0 }), policy({ idleTimeoutSeconds: 10 }), null, 10_001), 'idle timeout');
  assert.equal(timeoutReason(session({ lastActivityAt: 5000 }), policy({ idleTimeoutSeconds: 10 }), null, 10_001), null);
  assert.equal(timeoutReason(session({ createdAt: 0 }), policy({ maxSessionSeconds: 3600 }), null, 3_600_001), 'maximum session length reached');
  assert.equal(timeoutReason(session({}), policy(), null, 1e12), null, 'connected, no limits: never');
});

test('backoff doubles up to its ceiling', () => {
  assert.deepEqual([1, 2, 3, 4, 10].map((f) => backoffMs(f, 100, 1000)), [100, 200, 400, 800, 1000]);
});
