// Waiting for what a channel learns later (our agent's hello, qemu-guest-agent's first answer):
// one implementation of the timeout, abort and close handling both channels need.

export interface ValueWait<T> {
  /** The value, once the channel has it. */
  value: () => T | undefined;
  closed: () => boolean;
  /** The channel's waiters, poked whenever the value or closed may have changed. */
  waiters: Array<() => void>;
  timeoutMs: number;
  signal?: AbortSignal;
  closedMessage: string;
  timeoutMessage: string;
}

/** Resolves with the value (at once when there is one); rejects on timeout, abort or close. */
export function waitForValue<T>(o: ValueWait<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    const now = o.value();
    if (now !== undefined) return resolve(now);
    let timer: NodeJS.Timeout | undefined;
    const done = (fn: () => void) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      const i = o.waiters.indexOf(check);
      if (i >= 0) o.waiters.splice(i, 1);
      fn();
    };
    const check = () => {
      const v = o.value();
      if (v !== undefined) done(() => resolve(v));
      else if (o.closed()) done(() => reject(new Error(o.closedMessage)));
    };
    const onAbort = () => done(() => reject(o.signal?.reason instanceof Error ? o.signal.reason : new Error('aborted')));
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => done(() => reject(new Error(o.timeoutMessage))), o.timeoutMs);
    o.waiters.push(check);
  });
}
