// Shared pieces: polling, confirmation dialog, outcome banners.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { describeError } from './api.ts';
import { onLiveState, subscribe, type LiveState } from './live.ts';
import { t as tr, useT } from './i18n/index.ts';

/**
 * Calls `load` now and every `ms` (while the tab is visible); the latest value or error.
 * With `live`, it also reloads on every server-sent snapshot (helpdesk pages).
 */
export function usePoll<T>(load: () => Promise<T>, ms: number, deps: unknown[] = [], live = false): { data: T | null; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const loadRef = useRef(load);
  loadRef.current = load;
  const run = useCallback(async () => {
    try {
      setData(await loadRef.current());
      setError(null);
    } catch (e) {
      setError(describeError(e));
    }
  }, []);
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      if (!alive) return;
      if (document.visibilityState !== 'hidden') await run();
      if (alive) timer = setTimeout(tick, ms);
    };
    void tick();
    const unsubscribe = live ? subscribe(() => void run()) : () => undefined;
    return () => {
      alive = false;
      clearTimeout(timer);
      unsubscribe();
    };
  }, deps);
  return { data, error, reload: () => void run() };
}

export interface ConfirmRequest {
  title: string;
  body: ComponentChildren;
  action: string;
  danger?: boolean;
  /** Extra input (e.g. a user name); its value is passed to run. */
  input?: { label: string; value?: string; options?: string[] };
  run: (input: string) => Promise<string | void>;
}

/** A modal that confirms an action, runs it, and reports the outcome through onDone. */
export function ConfirmDialog(props: { req: ConfirmRequest | null; onClose: () => void; onDone: (ok: boolean, text: string) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [value, setValue] = useState('');
  const t = useT();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.req) {
      setValue(props.req.input?.value ?? props.req.input?.options?.[0] ?? '');
      if (!d.open) d.showModal();
    } else if (d.open) d.close();
  }, [props.req]);
  const r = props.req;
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="confirm-title" onClose={() => props.onClose()}>
      {r && (
        <form
          method="dialog"
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            try {
              const text = await r.run(value);
              props.onDone(true, text || tr('ui.done', { action: r.action }));
            } catch (err) {
              props.onDone(false, tr('ui.failed', { action: r.action, error: describeError(err) }));
            } finally {
              setBusy(false);
              props.onClose();
            }
          }}
        >
          <h2 id="confirm-title">{r.title}</h2>
          <div class="confirm-body">{r.body}</div>
          {r.input && (
            <label>
              {r.input.label}
              {r.input.options ? (
                <select value={value} onChange={(e) => setValue((e.target as HTMLSelectElement).value)}>
                  {r.input.options.map((o) => <option key={o} value={o}>{o}</option>)}
                </select>
              ) : (
                <input value={value} required onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
              )}
            </label>
          )}
          <div class="buttons">
            <button type="button" onClick={() => props.onClose()} disabled={busy}>{t('common.cancel')}</button>
            <button type="submit" class={r.danger ? 'danger' : 'primary'} disabled={busy}>{busy ? t('common.working') : r.action}</button>
          </div>
        </form>
      )}
    </dialog>
  );
}

export interface Outcome { ok: boolean; text: string; at: number }

export function OutcomeBanner(props: { outcome: Outcome | null }) {
  if (!props.outcome) return null;
  return <p class={props.outcome.ok ? 'banner ok' : 'banner bad'} role="status" aria-live="polite">{props.outcome.text}</p>;
}

/** confirm + outcome state for a page with actions. */
export function useActions() {
  const [req, setReq] = useState<ConfirmRequest | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const dialog = <ConfirmDialog req={req} onClose={() => setReq(null)} onDone={(ok, text) => setOutcome({ ok, text, at: Date.now() })} />;
  return { ask: setReq, outcome, dialog, banner: <OutcomeBanner outcome={outcome} /> };
}

export function StateBadge(props: { state: string }) {
  const t = useT();
  return <span class={`badge st-${props.state}`}>{t(`state.${props.state}`, { defaultValue: props.state.replace('_', ' ') })}</span>;
}

export function ErrorLine(props: { error: string | null }) {
  return props.error ? <p class="banner bad" role="alert">{props.error}</p> : null;
}

/** "live" / "polling" indicator for the helpdesk console. */
export function LiveIndicator() {
  const [s, setS] = useState<LiveState>('connecting');
  const t = useT();
  useEffect(() => onLiveState(setS), []);
  return <span class={`live live-${s}`} data-testid="live-state" title={s === 'live' ? t('live.liveTitle') : t('live.downTitle')}>{s === 'live' ? t('live.live') : s === 'down' ? t('live.down') : t('live.connecting')}</span>;
}
