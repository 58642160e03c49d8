import { test } from 'node:test';
import assert from 'node:assert/strict';
import { timeoutReason, backoffMs, idleMs, GUEST_IDLE_FRESH_MS } from '../../server/jobs/index.ts';
import type { Session } from '../../server/broker/index.ts';

const policy = (o: Partial<{ idleTimeoutSeconds: number; logoffAfterDisconnectSeconds: number; maxSessionSeconds: number }> = {}) => ({
  sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 60, maxSessionSeconds: 0, ...o },
});
const session = (o: Partial<Session>): Session => ({
  id: 's', user: 'u', desktop: 'd', pool: 'p', state: 'connected', clientAddress: '', createdAt: 0, connectedAt: 0,
  disconnectedAt: 0, lastActivityAt: 0, endedAt: 0, endReason: '', bytesIn: 0, bytesOut: 0, connectedMs: 0, tunnels: 0,
  logon: {}, guestIdleSeconds: 0, guestIdleAt: 0, ...o,
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

test("the idle timeout uses the guest agent's idle time while its reports are fresh", () => {
  const p = policy({ idleTimeoutSeconds: 600 });
  // The tunnel saw no input for 20 min, but the agent saw the user type 60 s before its report 10 s ago.
  const agentBusy = session({ lastActivityAt: 0, guestIdleSeconds: 60, guestIdleAt: 1_190_000 });
  assert.equal(idleMs(agentBusy, 1_200_000), 70_000);
  assert.equal(timeoutReason(agentBusy, p, null, 1_200_000), null);
  // The agent says idle for 11 min while the tunnel relayed input a minute ago: the agent's value counts.
  const agentIdle = session({ lastActivityAt: 1_140_000, guestIdleSeconds: 660, guestIdleAt: 1_195_000 });
  assert.equal(timeoutReason(agentIdle, p, null, 1_200_000), 'idle timeout');
  // A stale report (the agent went quiet) falls back to the tunnel's input time.
  const stale = session({ lastActivityAt: 0, guestIdleSeconds: 0, guestIdleAt: 1_200_000 - GUEST_IDLE_FRESH_MS - 1 });
  assert.equal(idleMs(stale, 1_200_000), 1_200_000);
  assert.equal(timeoutReason(stale, p, null, 1_200_000), 'idle timeout');
  // No agent at all: the tunnel's input time.
  assert.equal(timeoutReason(session({ lastActivityAt: 1_000_000 }), p, null, 1_200_000), null);
});

test('backoff doubles up to its ceiling', () => {
  assert.deepEqual([1, 2, 3, 4, 10].map((f) => backoffMs(f, 100, 1000)), [100, 200, 400, 800, 1000]);
});
