// What the user sees of a helpdesk shadow (server/broker/shadow.service.ts), over their
// viewer: a notice while someone watches (with who), the question when the pool asks for
// consent (Allow / Deny, 30 s), the question when the helpdesk asks for control (Allow /
// Refuse), and *Take back control* while it has it. Followed through server-sent events
// (GET /me/sessions/{id}/shadow/events, any replica); answers go to
// POST /me/sessions/{id}/shadow/{consent|control}. Mounted by Viewer.tsx for the user's own session.
import { useEffect, useState } from 'preact/hooks';
import { api, describeError, enc } from '../api.ts';
import { tParts, useT } from '../i18n/index.ts';

export interface MyShadow {
  shadowed: boolean;
  by: string;
  consent: 'pending' | 'allowed' | 'denied' | 'timeout' | null;
  control: 'none' | 'requested' | 'granted' | 'denied' | 'revoked' | null;
  answerBy: number;
  ended?: boolean;
}

const NONE: MyShadow = { shadowed: false, by: '', consent: null, control: null, answerBy: 0 };

/** The shadow state of the session, live. */
export function useShadow(session: string | undefined): [MyShadow, (s: MyShadow) => void] {
  const [state, setState] = useState<MyShadow>(NONE);
  useEffect(() => {
    if (!session || typeof EventSource === 'undefined') return;
    const es = new EventSource(`/api/v1/me/sessions/${enc(session)}/shadow/events`);
    es.addEventListener('shadow', (e) => {
      try {
        setState(JSON.parse((e as MessageEvent<string>).data) as MyShadow);
      } catch {
        // not ours
      }
    });
    es.addEventListener('ended', () => {
      setState(NONE);
      es.close();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) es.close();
    };
    return () => es.close();
  }, [session]);
  return [state, setState];
}

function useCountdown(until: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!until) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [until]);
  return until ? Math.max(0, Math.ceil((until - now) / 1000)) : 0;
}

export function ShadowNotice(props: { session: string | undefined }) {
  const [s, setS] = useShadow(props.session);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const left = useCountdown(s.answerBy);
  const t = useT();
  if (!props.session) return null;
  const answer = (what: 'consent' | 'control', allow: boolean) => async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<{ shadow: MyShadow }>(`/me/sessions/${enc(props.session!)}/shadow/${what}`, { allow });
      setS(r.shadow);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  const who = s.by || t('shadowNotice.theHelpdesk');
  if (s.consent === 'pending' && left > 0) {
    return (
      <div class="overlay shadow-ask">
        <div class="overlay-box" role="alertdialog" aria-modal="true" aria-labelledby="shadow-ask-title" data-testid="shadow-consent" data-local-keys>
          <h2 id="shadow-ask-title">{t('shadowNotice.askTitle')}</h2>
          <p>{tParts('shadowNotice.askBody', { who: <strong>{who}</strong> }, { left })}</p>
          {error && <p class="bad" role="alert">{error}</p>}
          <button type="button" disabled={busy} onClick={answer('consent', false)}>{t('shadowNotice.deny')}</button>{' '}
          <button type="button" class="primary" disabled={busy} onClick={answer('consent', true)}>{t('shadowNotice.allow')}</button>
        </div>
      </div>
    );
  }
  if (!s.shadowed) return null;
  return (
    <>
      <div class="shadow-notice" role="status" aria-live="polite" data-testid="shadow-notice" data-local-keys>
        {s.control === 'granted'
          ? tParts('shadowNotice.controlling', { who: <strong>{who}</strong> })
          : tParts('shadowNotice.watching', { who: <strong>{who}</strong> })}
        {s.control === 'granted' && <button type="button" class="danger" disabled={busy} onClick={answer('control', false)}>{t('shadowNotice.takeBack')}</button>}
        {error && <span class="bad"> {error}</span>}
      </div>
      {s.control === 'requested' && left > 0 && (
        <div class="overlay shadow-ask">
          <div class="overlay-box" role="alertdialog" aria-modal="true" aria-labelledby="shadow-control-title" data-testid="shadow-control" data-local-keys>
            <h2 id="shadow-control-title">{t('shadowNotice.controlTitle')}</h2>
            <p>{tParts('shadowNotice.controlBody', { who: <strong>{who}</strong> }, { left })}</p>
            <button type="button" disabled={busy} onClick={answer('control', false)}>{t('shadowNotice.refuse')}</button>{' '}
            <button type="button" class="primary" disabled={busy} onClick={answer('control', true)}>{t('shadowNotice.allowControl')}</button>
          </div>
        </div>
      )}
    </>
  );
}
