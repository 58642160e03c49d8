// The viewer page around a DesktopViewer: toolbar (special keys, clipboard, fullscreen,
// disconnect / log off), connection state overlay with reconnect countdown, helpdesk messages
// shown over the desktop until dismissed, and the first frame's time reported to the broker
// (the logon timeline). Also: the clipboard panel (send to the desktop's clipboard, or type the
// text as keystrokes for consoles without one), an on-screen keyboard for touch screens, the
// tab's title naming the desktop, and the truth when the session was ended (by the helpdesk, a
// timeout...) with a "Launch again" that starts a new session.
import { t as tr, useT } from '../i18n/index.ts';
import { formatTime } from '../i18n/format.ts';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, enc } from '../api.ts';
import { DesktopViewer, KEYSYM, TYPE_MAX_CHARS, type ViewerState, type ViewerOptions } from './viewer.ts';
import { OnScreenKeyboard } from './keyboard.tsx';
import { RecordingNotice, useRecordingFlag } from './recording-notice.tsx';
import { ShadowNotice } from './shadow-notice.tsx';

/** A helpdesk message for this session (GET /me/sessions/{id}/messages). */
interface HelpdeskMessage { id: number; title: string; text: string; at: number }

/** Why a session ended, from the message stream's `ended` event (or the tunnel's status). */
export interface SessionEnd { reason: string; by: 'helpdesk' | 'you' | 'timeout' | 'other' }

export function sessionEndOf(reason: string): SessionEnd {
  const r = reason.toLowerCase();
  if (!r) return { reason, by: 'other' };
  if (r.includes('helpdesk')) return { reason, by: 'helpdesk' };
  if (r === 'logoff' || r === 'user logoff') return { reason, by: 'you' };
  if (r.includes('timeout') || r.includes('idle') || r.includes('expired')) return { reason, by: 'timeout' };
  return { reason, by: 'other' };
}

/** What the person reads when their session was ended; one place for these strings. */
export function endedText(e: SessionEnd | null, desktop: string): { title: string; detail: string } {
  const detail = tr('viewer.endedDetail');
  switch (e?.by) {
    case 'helpdesk':
      return { title: tr('viewer.endedHelpdesk', { desktop }), detail };
    case 'you':
      return { title: tr('viewer.endedYou', { desktop }), detail };
    case 'timeout':
      return { title: tr('viewer.endedTimeout', { desktop, reason: e.reason }), detail };
    case 'other':
      if (!e.reason) break;
      return { title: tr('viewer.endedReason', { desktop, reason: e.reason }), detail };
  }
  return { title: tr('viewer.ended', { desktop }), detail };
}

/** The broker takes first-frame reports up to this long after Launch. */
const FIRST_FRAME_MAX_MS = 600_000;

export interface ViewerProps {
  title: string;
  ticket: ViewerOptions['ticket'];
  readOnly: boolean;
  /** Disconnect: close the tunnel only; `ended` says why, when the session itself was ended. */
  onDisconnect: (ended?: SessionEnd) => void;
  /** The session was ended: start a new one (user viewer only). */
  onRelaunch?: () => void;
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
function useHelpdeskMessages(session: string | undefined): [HelpdeskMessage[], (id: number) => void, SessionEnd | null] {
  const [queue, setQueue] = useState<HelpdeskMessage[]>([]);
  const [ended, setEnded] = useState<SessionEnd | null>(null);
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
    es.addEventListener('ended', (e) => {
      es.close();
      let reason = '';
      try {
        reason = String((JSON.parse((e as MessageEvent<string>).data) as { reason?: unknown }).reason ?? '');
      } catch {
        // no reason given
      }
      setEnded(sessionEndOf(reason));
    });
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
  return [queue, dismiss, ended];
}


const SPECIAL: { label: string; keys: number[] }[] = [
  { label: 'Ctrl-Alt-Del', keys: [KEYSYM.ctrl, KEYSYM.alt, KEYSYM.del] },
  { label: 'Alt-Tab', keys: [KEYSYM.alt, KEYSYM.tab] },
  { label: 'viewer.windowsKey', keys: [KEYSYM.super] },
  { label: 'Esc', keys: [KEYSYM.esc] },
  { label: 'Ctrl-W', keys: [KEYSYM.ctrl, 0x77] },
  { label: 'Ctrl-T', keys: [KEYSYM.ctrl, 0x74] },
  { label: 'Ctrl-N', keys: [KEYSYM.ctrl, 0x6e] },
  { label: 'F11', keys: [KEYSYM.f11] },
];

/** The tab's title while a desktop is open. */
export const viewerTitle = (desktop: string) => `${desktop} — vdi-broker`;

/** Statuses that mean the session itself is over (not just this connection). */
const ENDED_STATUS = new Set(['SESSION_CLOSED', 'ENDED']);

export function Viewer(props: ViewerProps) {
  const host = useRef<HTMLDivElement>(null);
  const viewer = useRef<DesktopViewer | null>(null);
  const [state, setState] = useState<ViewerState>({ phase: 'connecting', status: null, attempt: 0, nextAttemptAt: 0 });
  const [clip, setClip] = useState('');
  const [clipOpen, setClipOpen] = useState(false);
  const [clipNote, setClipNote] = useState<{ ok: boolean; text: string } | null>(null);
  const [keysOpen, setKeysOpen] = useState(false);
  const t = useT();
  const [oskOpen, setOskOpen] = useState(false);
  const [confirmLogoff, setConfirmLogoff] = useState(false);
  const [now, setNow] = useState(Date.now());
  const [fromDesktop, setFromDesktop] = useState(false);
  const [remoteCursor, setRemoteCursor] = useState(false);
  const [messages, dismiss, streamEnded] = useHelpdeskMessages(props.readOnly ? undefined : props.session);
  const [ticket, recording] = useRecordingFlag(props.ticket);
  const connections = useRef(0);
  const dismissButton = useRef<HTMLButtonElement>(null);
  // A message takes the focus (Enter or Space dismisses it); the desktop gets it back after.
  useEffect(() => {
    if (messages[0]) dismissButton.current?.focus();
    else if (host.current && document.activeElement === document.body) host.current.focus();
  }, [messages[0]?.id]);

  // The tab names the desktop while it is open.
  useEffect(() => {
    const before = document.title;
    document.title = viewerTitle(props.title);
    return () => void (document.title = before);
  }, [props.title]);

  useEffect(() => {
    const v = new DesktopViewer(host.current!, {
      ticket,
      readOnly: props.readOnly,
      onState: (s) => {
        setState(s);
        if (s.phase === 'closed') props.onClosed?.(s);
      },
      onClipboard: (text) => {
        setClip(text);
        setFromDesktop(true);
        setClipNote(null);
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
      onRemoteCursor: () => setRemoteCursor(true),
    });
    viewer.current = v;
    v.start();
    return () => v.stop();
  }, []);

  // The session ended (the message stream says so): stop reconnecting, whatever the tunnel said.
  useEffect(() => {
    if (streamEnded) viewer.current?.end(endedText(streamEnded, props.title).title);
  }, [streamEnded]);

  useEffect(() => {
    if (state.phase !== 'reconnecting') return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [state.phase]);

  const fullscreen = () => {
    if (document.fullscreenElement) void document.exitFullscreen();
    else void document.documentElement.requestFullscreen().catch(() => undefined);
  };

  const sendClipboard = async (text: string) => {
    try {
      await viewer.current?.sendClipboard(text);
      setClipNote({ ok: true, text: tr('viewer.clipCopied', { count: text.length }) });
    } catch (e) {
      setClipNote({ ok: false, text: tr('viewer.clipNotSent', { error: (e as Error).message }) });
    }
  };
  const typeClipboard = async () => {
    if (state.phase !== 'connected') return setClipNote({ ok: false, text: tr('viewer.clipNotConnected') });
    const n = (await viewer.current?.typeText(clip)) ?? 0;
    setClipNote({ ok: n > 0, text: n > 0 ? (clip.length > TYPE_MAX_CHARS ? tr('viewer.typedFirst', { count: n, max: TYPE_MAX_CHARS }) : tr('viewer.typed', { count: n })) : tr('viewer.nothingToType') });
  };

  // Ended for good: the stream's reason, or the tunnel's "session closed" while the stream has not said why yet.
  const ended: SessionEnd | null = streamEnded ?? (state.phase === 'closed' && state.status && ENDED_STATUS.has(state.status.name) ? { reason: '', by: 'other' } : null);
  const endText = endedText(streamEnded, props.title);
  const showEnded = !props.readOnly && !!ended && (state.phase === 'closed' || !!streamEnded);

  const wait = Math.max(0, Math.ceil((state.nextAttemptAt - now) / 1000));
  return (
    <div class={`viewer${oskOpen ? ' with-osk' : ''}`} data-phase={state.phase}>
      <div class="toolbar" role="toolbar" aria-label={t('viewer.controls')}>
        <span class="title">{props.title}{props.readOnly && <span class="badge st-readonly">{t('viewer.readOnly')}</span>}</span>
        <span class={`conn conn-${state.phase}`} data-testid="conn-state">{t(`viewer.phase.${state.phase}`, { defaultValue: state.phase })}</span>
        <RecordingNotice recording={recording} />
        {!props.readOnly && (
          <>
            <button type="button" onClick={() => viewer.current?.sendKeys(SPECIAL[0]!.keys)} title={t('viewer.cadTitle')}>Ctrl-Alt-Del</button>
            <span class="menu">
              <button type="button" aria-expanded={keysOpen} onClick={() => setKeysOpen(!keysOpen)}>{t('viewer.keys')} ▾</button>
              {keysOpen && (
                <span class="menu-items">
                  {SPECIAL.map((s) => (
                    <button key={s.label} type="button" onClick={() => { viewer.current?.sendKeys(s.keys); setKeysOpen(false); }}>{s.label.startsWith('viewer.') ? t(s.label) : s.label}</button>
                  ))}
                </span>
              )}
            </span>
            <button type="button" aria-expanded={oskOpen} aria-controls="osk" onClick={() => setOskOpen(!oskOpen)} title={t('viewer.oskTitle')}>{t('viewer.keyboard')}</button>
            <button type="button" aria-expanded={clipOpen} onClick={() => setClipOpen(!clipOpen)}>{t('viewer.clipboard')}</button>
          </>
        )}
        <button type="button" onClick={fullscreen}>{t('viewer.fullscreen')}</button>
        <button type="button" onClick={() => props.onDisconnect(showEnded ? ended! : undefined)} title={props.readOnly ? t('viewer.stopWatching') : t('viewer.disconnectTitle')}>{props.readOnly ? t('viewer.stopWatching') : t('viewer.disconnect')}</button>
        {props.onLogoff && <button type="button" class="danger" onClick={() => setConfirmLogoff(true)} title={t('viewer.logoffTitle')}>{t('viewer.logoff')}</button>}
      </div>
      {clipOpen && (
        <div class="clipboard" data-testid="clipboard-panel">
          <label>
            {t('viewer.clipboard')} {fromDesktop ? t('viewer.clipFromDesktop') : t('viewer.clipToDesktop')}
            <textarea name="clipboard" rows={4} value={clip} onInput={(e) => { setClip((e.target as HTMLTextAreaElement).value); setFromDesktop(false); setClipNote(null); }} />
          </label>
          <div class="clipboard-actions">
            <button type="button" onClick={() => void sendClipboard(clip)} title={t('viewer.sendTitle')}>{t('viewer.send')}</button>
            <button type="button" onClick={() => void typeClipboard()} title={t('viewer.typeTitle')}>{t('viewer.type')}</button>
            <button type="button" onClick={() => navigator.clipboard?.readText().then((t) => { setClip(t); void sendClipboard(t); }).catch(() => setClipNote({ ok: false, text: tr('viewer.pasteDenied') }))}>{t('viewer.paste')}</button>
          </div>
          {clipNote && <p class={clipNote.ok ? 'clip-note ok' : 'clip-note bad'} role="status" data-testid="clipboard-note">{clipNote.text}</p>}
        </div>
      )}
      <div class={remoteCursor ? 'screen remote-cursor' : 'screen'} ref={host} tabIndex={0} role="application" aria-label={t('viewer.screen')} data-remote-cursor={remoteCursor ? '1' : undefined} />
      {oskOpen && !props.readOnly && (
        <OnScreenKeyboard id="osk" onKey={(keysym, mods) => viewer.current?.pressKey(keysym, mods)} onClose={() => setOskOpen(false)} />
      )}
      {showEnded ? (
        <div class="overlay" role="alert">
          <div class="overlay-box" data-testid="session-ended">
            <p><strong>{endText.title}</strong></p>
            <p>{endText.detail}</p>
            {props.onRelaunch && <button type="button" class="primary" onClick={() => props.onRelaunch!()}>{t('viewer.launchAgain')}</button>}{' '}
            <button type="button" onClick={() => props.onDisconnect(ended!)}>{t('app.backToDesktops')}</button>
          </div>
        </div>
      ) : state.phase !== 'connected' && (
        <div class="overlay" role="status" aria-live="polite">
          <div class="overlay-box">
            {state.phase === 'connecting' && <p>{t('viewer.connecting')}</p>}
            {state.phase === 'reconnecting' && (
              <>
                <p><strong>{t('viewer.lost')}</strong> {state.status && t(`guac.${state.status.name}`, { defaultValue: state.status.message })}</p>
                <p>{wait > 0 ? t('viewer.reconnectingIn', { wait, attempt: state.attempt }) : t('viewer.reconnecting', { attempt: state.attempt })}</p>
                <button type="button" onClick={() => viewer.current?.reconnectNow()}>{t('viewer.reconnectNow')}</button>
              </>
            )}
            {state.phase === 'closed' && (
              <>
                <p><strong>{t('viewer.disconnected')}</strong> {state.status && t(`guac.${state.status.name}`, { defaultValue: state.status.message })}</p>
                <button type="button" onClick={() => viewer.current?.reconnectNow()}>{t('viewer.tryAgain')}</button>{' '}
                <button type="button" onClick={() => props.onDisconnect()}>{t('viewer.back')}</button>
              </>
            )}
          </div>
        </div>
      )}
      {!props.readOnly && <ShadowNotice session={props.session} />}
      {messages[0] && (
        <div class="overlay message-overlay">
          <div class="overlay-box" role="alertdialog" aria-modal="true" aria-labelledby="helpdesk-message-title" aria-describedby="helpdesk-message-text" data-testid="helpdesk-message" data-local-keys>
            <p class="muted small">{t('message.defaultTitle')} · {formatTime(messages[0].at)}</p>
            <h2 id="helpdesk-message-title">{messages[0].title}</h2>
            <p id="helpdesk-message-text" class="message-text">{messages[0].text}</p>
            <button type="button" class="primary" ref={dismissButton} onClick={() => dismiss(messages[0]!.id)}>{messages.length > 1 ? t('viewer.dismissMore', { n: messages.length - 1 }) : t('viewer.dismiss')}</button>
          </div>
        </div>
      )}
      {confirmLogoff && props.onLogoff && (
        <div class="overlay">
          <div class="overlay-box" role="dialog" aria-modal="true" aria-label={t('viewer.logoff')}>
            <p><strong>{t('viewer.logoffQ')}</strong> {t('viewer.logoffBody')}</p>
            <p>{t('viewer.logoffHint')}</p>
            <button type="button" onClick={() => setConfirmLogoff(false)}>{t('common.cancel')}</button>{' '}
            <button type="button" class="danger" onClick={() => { setConfirmLogoff(false); viewer.current?.stop(); void props.onLogoff!(); }}>{t('viewer.logoffNow')}</button>
          </div>
        </div>
      )}
    </div>
  );
}
