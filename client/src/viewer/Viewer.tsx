// The viewer page around a DesktopViewer: toolbar (special keys, clipboard, fullscreen,
// disconnect / log off), connection state overlay with reconnect countdown, helpdesk messages
// shown over the desktop until dismissed, and the first frame's time reported to the broker
// (the logon timeline).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, enc } from '../api.ts';
import { DesktopViewer, KEYSYM, type ViewerState, type ViewerOptions } from './viewer.ts';

/** A helpdesk message for this session (GET /me/sessions/{id}/messages). */
interface HelpdeskMessage { id: number; title: string; text: string; at: number }

/** The broker takes first-frame reports up to this long after Launch. */
const FIRST_FRAME_MAX_MS = 600_000;

export interface ViewerProps {
  title: string;
  ticket: ViewerOptions['ticket'];
  readOnly: boolean;
  /** Disconnect: close the tunnel only. */
  onDisconnect: () => void;
  /** Log off (user viewer only). */
  onLogoff?: () => Promise<void>;
  /** Called when the connection ended for good (not retrying). */
  onClosed?: (s: ViewerState) => void;
  /** The user's own session: its helpdesk messages are shown and first frames reported. */
  session?: string;
  /** When the user clicked Launch (ms epoch): the first connection's first frame counts from it. */
  launchedAt?: number;
}

/** Messages already dismissed in this tab (a reload does not show them again). */
function dismissedOf(session: string): Set<number> {
  try {
    return new Set((JSON.parse(sessionStorage.getItem(`vdi.dismissed.${session}`) ?? '[]') as number[]).filter((n) => Number.isInteger(n)));
  } catch {
    return new Set();
  }
}

function rememberDismissed(session: string, id: number): void {
  try {
    const ids = [...dismissedOf(session), id].slice(-50);
    sessionStorage.setItem(`vdi.dismissed.${session}`, JSON.stringify(ids));
  } catch {
    // storage unavailable: it may show again after a reload
  }
}

/**
 * The session's helpdesk messages, from the broker's server-sent events (any replica; resumes
 * after the last id by itself). Why not the tunnel: messages must reach a user whose tunnel is
 * down or reconnecting, and the tunnel relays only what guacd and the desktop say.
 */
function useHelpdeskMessages(session: string | undefined): [HelpdeskMessage[], (id: number) => void] {
  const [queue, setQueue] = useState<HelpdeskMessage[]>([]);
  useEffect(() => {
    if (!session || typeof EventSource === 'undefined') return;
    const seen = dismissedOf(session);
    const es = new EventSource(`/api/v1/me/sessions/${enc(session)}/messages`);
    es.addEventListener('message', (e) => {
      try {
        const m = JSON.parse((e as MessageEvent<string>).data) as HelpdeskMessage;
        if (seen.has(m.id)) return;
        seen.add(m.id);
        setQueue((q) => [...q, m]);
      } catch {
        // not a message
      }
    });
    es.addEventListener('ended', () => es.close());
    // A 404 (session gone) closes it for good; other errors reconnect by themselves.
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) es.close();
    };
    return () => es.close();
  }, [session]);
  const dismiss = (id: number) => {
    if (session) rememberDismissed(session, id);
    setQueue((q) => q.filter((m) => m.id !== id));
  };
  return [queue, dismiss];
}


const SPECIAL: { label: string; keys: number[] }[] = [
  { label: 'Ctrl-Alt-Del', keys: [KEYSYM.ctrl, KEYSYM.alt, KEYSYM.del] },
  { label: 'Alt-Tab', keys: [KEYSYM.alt, KEYSYM.tab] },
  { label: 'Windows key', keys: [KEYSYM.super] },
  { label: 'Esc', keys: [KEYSYM.esc] },
  { label: 'Ctrl-W', keys: [KEYSYM.ctrl, 0x77] },
  { label: 'Ctrl-T', keys: [KEYSYM.ctrl, 0x74] },
  { label: 'Ctrl-N', keys: [KEYSYM.ctrl, 0x6e] },
  { label: 'F11', keys: [KEYSYM.f11] },
];

export function Viewer(props: ViewerProps) {
  const host = useRef<HTMLDivElement>(null);
  const viewer = useRef<DesktopViewer | null>(null);
  const [state, setState] = useState<ViewerState>({ phase: 'connecting', status: null, attempt: 0, nextAttemptAt: 0 });
  const [clip, setClip] = useState('');
  const [clipOpen, setClipOpen] = useState(false);
  const [keysOpen, setKeysOpen] = useState(false);
  const [confirmLogoff, setConfirmLogoff] = useState(false);
  const [now, setNow] = useState(Date.now());
  const [fromDesktop, setFromDesktop] = useState(false);
  const [messages, dismiss] = useHelpdeskMessages(props.readOnly ? undefined : props.session);
  const connections = useRef(0);
  const dismissButton = useRef<HTMLButtonElement>(null);
  // A message takes the focus (Enter or Space dismisses it); the desktop gets it back after.
  useEffect(() => {
    if (messages[0]) dismissButton.current?.focus();
    else if (host.current && document.activeElement === document.body) host.current.focus();
  }, [messages[0]?.id]);

  useEffect(() => {
    const v = new DesktopViewer(host.current!, {
      ticket: props.ticket,
      readOnly: props.readOnly,
      onState: (s) => {
        setState(s);
        if (s.phase === 'closed') props.onClosed?.(s);
      },
      onClipboard: (text) => {
        setClip(text);
        setFromDesktop(true);
        // Best effort: the async clipboard API needs focus and permission.
        navigator.clipboard?.writeText(text).catch(() => undefined);
      },
      onFirstFrame: (ms) => {
        // The first connection counts from the Launch click; later ones (reconnects) from their own start.
        const first = connections.current++ === 0;
        const since = first && props.launchedAt ? Date.now() - props.launchedAt : ms;
        if (!props.session || props.readOnly || since < 0 || since > FIRST_FRAME_MAX_MS) return;
        api.post(`/me/sessions/${enc(props.session)}/first-frame`, { ms: Math.round(since) }).catch(() => undefined);
      },
    });
    viewer.current = v;
    v.start();
    return () => v.stop();
  }, []);

  useEffect(() => {
    if (state.phase !== 'reconnecting') return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [state.phase]);

  const fullscreen = () => {
    if (document.fullscreenElement) void document.exitFullscreen();
    else void document.documentElement.requestFullscreen().catch(() => undefined);
  };

  const wait = Math.max(0, Math.ceil((state.nextAttemptAt - now) / 1000));
  return (
    <div class="viewer" data-phase={state.phase}>
      <div class="toolbar" role="toolbar" aria-label="Desktop controls">
        <span class="title">{props.title}{props.readOnly && <span class="badge st-readonly">read-only</span>}</span>
        <span class={`conn conn-${state.phase}`} data-testid="conn-state">{state.phase}</span>
        {!props.readOnly && (
          <>
            <button type="button" onClick={() => viewer.current?.sendKeys(SPECIAL[0]!.keys)} title="Send Ctrl-Alt-Del to the desktop">Ctrl-Alt-Del</button>
            <span class="menu">
              <button type="button" aria-expanded={keysOpen} onClick={() => setKeysOpen(!keysOpen)}>Keys ▾</button>
              {keysOpen && (
                <span class="menu-items">
                  {SPECIAL.map((s) => (
                    <button key={s.label} type="button" onClick={() => { viewer.current?.sendKeys(s.keys); setKeysOpen(false); }}>{s.label}</button>
                  ))}
                </span>
              )}
            </span>
            <button type="button" aria-expanded={clipOpen} onClick={() => setClipOpen(!clipOpen)}>Clipboard</button>
          </>
        )}
        <button type="button" onClick={fullscreen}>Fullscreen</button>
        <button type="button" onClick={props.onDisconnect} title={props.readOnly ? 'Stop watching' : 'Close this window; your desktop and its apps keep running'}>{props.readOnly ? 'Stop watching' : 'Disconnect'}</button>
        {props.onLogoff && <button type="button" class="danger" onClick={() => setConfirmLogoff(true)} title="End your session and close your apps">Log off</button>}
      </div>
      {clipOpen && (
        <div class="clipboard">
          <label>
            Clipboard {fromDesktop ? '(copied from the desktop; select and copy it)' : '(type or paste text here, then Send to desktop)'}
            <textarea name="clipboard" rows={4} value={clip} onInput={(e) => { setClip((e.target as HTMLTextAreaElement).value); setFromDesktop(false); }} />
          </label>
          <button type="button" onClick={() => viewer.current?.sendClipboard(clip)}>Send to desktop</button>
          <button type="button" onClick={() => navigator.clipboard?.readText().then((t) => { setClip(t); viewer.current?.sendClipboard(t); }).catch(() => undefined)}>Paste from this computer</button>
        </div>
      )}
      <div class="screen" ref={host} tabIndex={0} />
      {state.phase !== 'connected' && (
        <div class="overlay" role="status" aria-live="polite">
          <div class="overlay-box">
            {state.phase === 'connecting' && <p>Connecting to your desktop…</p>}
            {state.phase === 'reconnecting' && (
              <>
                <p><strong>Connection lost.</strong> {state.status?.message}</p>
                <p>{wait > 0 ? `Reconnecting in ${wait} s (attempt ${state.attempt})…` : `Reconnecting (attempt ${state.attempt})…`}</p>
                <button type="button" onClick={() => viewer.current?.reconnectNow()}>Reconnect now</button>
              </>
            )}
            {state.phase === 'closed' && (
              <>
                <p><strong>Disconnected.</strong> {state.status?.message}</p>
                <button type="button" onClick={() => viewer.current?.reconnectNow()}>Try again</button>{' '}
                <button type="button" onClick={props.onDisconnect}>Back</button>
              </>
            )}
          </div>
        </div>
      )}
      {messages[0] && (
        <div class="overlay message-overlay">
          <div class="overlay-box" role="alertdialog" aria-modal="true" aria-labelledby="helpdesk-message-title" aria-describedby="helpdesk-message-text" data-testid="helpdesk-message" data-local-keys>
            <p class="muted small">Message from the helpdesk · {new Date(messages[0].at).toLocaleTimeString()}</p>
            <h2 id="helpdesk-message-title">{messages[0].title}</h2>
            <p id="helpdesk-message-text" class="message-text">{messages[0].text}</p>
            <button type="button" class="primary" ref={dismissButton} onClick={() => dismiss(messages[0]!.id)}>{messages.length > 1 ? `Dismiss (${messages.length - 1} more)` : 'Dismiss'}</button>
          </div>
        </div>
      )}
      {confirmLogoff && props.onLogoff && (
        <div class="overlay">
          <div class="overlay-box" role="dialog" aria-label="Log off">
            <p><strong>Log off?</strong> Your apps are closed and unsaved work is lost. A non-persistent desktop is refreshed to a clean state; files in your network folder are kept.</p>
            <p>To leave your apps running, use <em>Disconnect</em> instead.</p>
            <button type="button" onClick={() => setConfirmLogoff(false)}>Cancel</button>{' '}
            <button type="button" class="danger" onClick={() => { setConfirmLogoff(false); viewer.current?.stop(); void props.onLogoff!(); }}>Log off now</button>
          </div>
        </div>
      )}
    </div>
  );
}
