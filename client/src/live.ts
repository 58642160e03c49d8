// Live updates for the helpdesk console: one shared EventSource on /api/v1/events (server-sent
// `snapshot` events with pools and live sessions). Pages subscribe; every snapshot is also a
// "something changed" signal to reload what they show. If the stream is down, pages keep
// polling on their own (usePoll's interval), so nothing depends on it.
import type { Pool, Session } from './types.ts';

export interface Snapshot { at: number; pools: Pool[]; sessions: Session[] }
export type LiveState = 'connecting' | 'live' | 'down';

const subs = new Set<(s: Snapshot) => void>();
const stateSubs = new Set<(s: LiveState) => void>();
let es: EventSource | null = null;
let last: Snapshot | null = null;
let state: LiveState = 'connecting';

function setState(s: LiveState): void {
  state = s;
  for (const f of stateSubs) f(s);
}

function open(): void {
  es = new EventSource('/api/v1/events');
  setState('connecting');
  es.addEventListener('open', () => setState('live'));
  es.addEventListener('snapshot', (e) => {
    last = JSON.parse((e as MessageEvent<string>).data) as Snapshot;
    setState('live');
    for (const f of subs) f(last);
  });
  es.addEventListener('unavailable', () => setState('down'));
  // The browser reconnects by itself (the server sends `retry`); a CLOSED source (403, 503)
  // is reopened after a while.
  es.addEventListener('error', () => {
    setState('down');
    if (es?.readyState === EventSource.CLOSED) {
      es = null;
      setTimeout(() => {
        if (subs.size && !es) open();
      }, 10_000);
    }
  });
}

export function subscribe(fn: (s: Snapshot) => void): () => void {
  subs.add(fn);
  if (!es) open();
  if (last) fn(last);
  return () => {
    subs.delete(fn);
    if (!subs.size && es) {
      es.close();
      es = null;
    }
  };
}

export function onLiveState(fn: (s: LiveState) => void): () => void {
  stateSubs.add(fn);
  fn(state);
  return () => void stateSubs.delete(fn);
}
