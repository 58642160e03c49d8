// The helpdesk's shadow of a session (/helpdesk/shadow/:id): start the shadow (the user is
// told, or asked first: consent), wait for the answer, then watch read-only; *Request control*
// asks the user for keyboard and mouse, and once they allow it the viewer reconnects with input
// (and back to read-only when they take it back). The status is polled, which keeps the shadow
// alive; leaving the page ends it (audited). The title names the user and the desktop.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, describeError, enc } from '../api.ts';
import { navigate } from '../router.tsx';
import type { Ticket } from '../types.ts';
import { Viewer } from '../viewer/Viewer.tsx';
import { t as tr, useT } from '../i18n/index.ts';

export interface ShadowView {
  session: string; user: string; desktop: string; policy: 'notify' | 'consent';
  consent: 'pending' | 'allowed' | 'denied' | 'timeout';
  control: 'none' | 'requested' | 'granted' | 'denied' | 'revoked';
  by: string; startedAt: number; answerBy: number;
}

interface Detail { session: { user: string; desktop: string; state: string }; desktop: { name: string } | null }

const POLL_MS = 1500;

export function ShadowPage(props: { id: string }) {
  const id = props.id;
  const [view, setView] = useState<ShadowView | null>(null);
  const [names, setNames] = useState<{ user: string; desktop: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const [attempt, setAttempt] = useState(0);
  const lastControl = useRef<ShadowView['control']>('none');
  const t = useT();

  useEffect(() => {
    api.get<Detail>(`/sessions/${enc(id)}`).then((d) => setNames({ user: d.session.user, desktop: d.desktop?.name ?? d.session.desktop }), () => undefined);
  }, [id]);

  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const r = await api.get<{ shadow: ShadowView }>(`/sessions/${enc(id)}/shadow`);
        if (!alive) return;
        setView(r.shadow);
        setNow(Date.now());
        const c = r.shadow.control;
        if (c !== lastControl.current) {
          if (c === 'granted') setNote(tr('shadow.granted'));
          else if (c === 'denied') setNote(tr('shadow.refusedControl'));
          else if (c === 'revoked') setNote(tr('shadow.revoked'));
          else if (c === 'none' && lastControl.current === 'requested') setNote(tr('shadow.noAnswer'));
          lastControl.current = c;
        }
      } catch (e) {
        if (!alive) return;
        setError(e instanceof ApiError && e.status === 404 ? tr('shadow.ended') : describeError(e));
        return;
      }
      if (alive) timer = setTimeout(() => void poll(), POLL_MS);
    };
    setError(null);
    setView(null);
    api.post<{ shadow: ShadowView }>(`/sessions/${enc(id)}/shadow/start`).then(
      (r) => {
        if (!alive) return;
        setView(r.shadow);
        timer = setTimeout(() => void poll(), POLL_MS);
      },
      (e: unknown) => alive && setError(describeError(e)),
    );
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [id, attempt]);

  // Leaving the page ends the shadow (the user's notice goes away).
  useEffect(() => () => void api.del(`/sessions/${enc(id)}/shadow`).catch(() => undefined), [id]);

  const who = names?.user ?? view?.user ?? t('shadow.theUser');
  const title = t('shadow.title', { user: names?.user ?? view?.user ?? '…', desktop: names?.desktop ?? '…' });
  useEffect(() => {
    const before = document.title;
    document.title = title;
    return () => void (document.title = before);
  }, [title]);

  const back = () => navigate('/helpdesk/sessions');
  const left = view?.answerBy ? Math.max(0, Math.ceil((view.answerBy - now) / 1000)) : 0;

  if (error || !view || view.consent !== 'allowed') {
    return (
      <main class="page" id="main" tabIndex={-1}>
        <h1>{title}</h1>
        {error && <p class="banner bad" role="alert">{error}</p>}
        {!error && !view && <p role="status">{t('shadow.starting')}</p>}
        {view?.consent === 'pending' && <p role="status" data-testid="shadow-waiting">{left ? t('shadow.waitingLeft', { user: who, left }) : t('shadow.waiting', { user: who })}</p>}
        {view?.consent === 'denied' && <p class="banner bad" role="alert" data-testid="shadow-refused">{t('shadow.declined', { user: who })}</p>}
        {view?.consent === 'timeout' && <p class="banner bad" role="alert" data-testid="shadow-refused">{t('shadow.timeout', { user: who })}</p>}
        <div class="buttons">
          {(error || view?.consent === 'denied' || view?.consent === 'timeout') && <button type="button" onClick={() => setAttempt(attempt + 1)}>{t('shadow.askAgain')}</button>}
          <button type="button" onClick={back}>{t('shadow.back')}</button>
        </div>
      </main>
    );
  }

  const control = view.control === 'granted';
  return (
    <>
      <Viewer
        key={control ? 'control' : 'view'}
        title={title}
        readOnly={!control}
        ticket={() => api.post<Ticket>(`/sessions/${enc(id)}/shadow`)}
        onDisconnect={back}
      />
      <div class="shadow-bar" role="region" aria-label={t('shadow.controlRegion')} data-local-keys>
        <span data-testid="shadow-control-state">
          {control ? t('shadow.haveControl') : view.control === 'requested' ? t('shadow.controlRequested', { user: who, left }) : t('shadow.viewOnly')}
        </span>
        {!control && view.control !== 'requested' && (
          <button type="button" onClick={() => api.post<{ shadow: ShadowView }>(`/sessions/${enc(id)}/shadow/control`).then((r) => { setView(r.shadow); setNote(null); }, (e: unknown) => setNote(describeError(e)))}>{t('shadow.requestControl')}</button>
        )}
        {note && <span class="small" role="status">{note}</span>}
      </div>
    </>
  );
}
