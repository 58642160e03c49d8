// Launch: request a desktop, show real progress while it is prepared (202 → poll the pool),
// then open the viewer with a fresh ticket per connection attempt.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, call, describeError, enc } from '../api.ts';
import { t as tr, useT } from '../i18n/index.ts';
import { formatDuration } from '../i18n/format.ts';
import type { MyPool, RequestResult, Ticket } from '../types.ts';
import { Viewer, endedText } from '../viewer/Viewer.tsx';
import { FatalTicketError } from '../viewer/viewer.ts';

type Phase =
  | { kind: 'requesting' }
  | { kind: 'preparing'; result: RequestResult; state: string; since: number; seen: string[] }
  | { kind: 'viewer'; result: RequestResult }
  | { kind: 'failed'; message: string };

const STEPS: { state: string; label: string }[] = [
  { state: 'requested', label: 'launch.requested' },
  { state: 'provisioning', label: 'launch.provisioning' },
  { state: 'refreshing', label: 'launch.refreshing' },
  { state: 'in_use', label: 'launch.ready' },
];

/** What the portal says after leaving a desktop; kiosks never name it (the next person reads the login page). */
export function leaveNotice(kind: 'disconnected' | 'logged-off', desktop: string, kiosk: boolean): string {
  const name = kiosk ? tr('launch.yourDesktop') : desktop;
  return kind === 'disconnected' ? tr('launch.disconnected', { name }) : tr('desktops.loggedOff', { name });
}

export function Launch(props: { pool: string; kiosk?: boolean; onLeave: (notice: string) => void }) {
  const [phase, setPhase] = useState<Phase>({ kind: 'requesting' });
  // "Launch again" after the session ended: a new request, so a new session.
  const [round, setRound] = useState(0);
  const [, tick] = useState(0);
  const t = useT();
  // The Launch click (this page opens on it): the logon timeline's first frame counts from here.
  const [launchedAt, setLaunchedAt] = useState(() => Date.now());

  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const started = Date.now();
    (async () => {
      let r: RequestResult;
      try {
        const a = await call<RequestResult>('POST', `/me/pools/${enc(props.pool)}/request`, {});
        r = a.body;
      } catch (e) {
        if (alive) setPhase({ kind: 'failed', message: describeError(e) });
        return;
      }
      if (!alive) return;
      if (r.desktop.state === 'in_use') return setPhase({ kind: 'viewer', result: r });
      const seen = ['requested', r.desktop.state];
      setPhase({ kind: 'preparing', result: r, state: r.desktop.state, since: started, seen });
      const poll = async () => {
        if (!alive) return;
        try {
          const { pools } = await api.get<{ pools: MyPool[] }>('/me/pools');
          const d = pools.find((p) => p.name === props.pool)?.desktop;
          if (!alive) return;
          if (d?.state === 'in_use') return setPhase({ kind: 'viewer', result: { ...r, desktop: { ...r.desktop, state: 'in_use' } } });
          if (d?.state === 'error') return setPhase({ kind: 'failed', message: tr('launch.failed', { name: d.name }) });
          if (!d) return setPhase({ kind: 'failed', message: tr('launch.cancelled') });
          if (!seen.includes(d.state)) seen.push(d.state);
          setPhase({ kind: 'preparing', result: r, state: d.state, since: started, seen: [...seen] });
        } catch (e) {
          if (!(e instanceof ApiError) || e.status >= 500 || e.status === 0) {
            // Broker trouble: keep waiting, say so.
          } else return setPhase({ kind: 'failed', message: describeError(e) });
        }
        timer = setTimeout(poll, 1000);
      };
      timer = setTimeout(poll, 500);
    })();
    const clock = setInterval(() => tick((n) => n + 1), 1000);
    return () => {
      alive = false;
      clearTimeout(timer);
      clearInterval(clock);
    };
  }, [props.pool, round]);

  if (phase.kind === 'requesting') return <main class="page center" id="main"><p class="spinner" role="status">{t('launch.finding')}</p></main>;
  if (phase.kind === 'failed') {
    return (
      <main class="page center" id="main">
        <p class="banner bad" role="alert">{phase.message}</p>
        <button type="button" onClick={() => props.onLeave('')}>{t('app.backToDesktops')}</button>
      </main>
    );
  }
  if (phase.kind === 'preparing') {
    const current = phase.state;
    const steps = STEPS.filter((s) => s.state !== 'refreshing' || phase.seen.includes('refreshing')).filter((s) => s.state !== 'provisioning' || !phase.seen.includes('refreshing') || phase.seen.includes('provisioning'));
    const idx = steps.findIndex((s) => s.state === current);
    return (
      <main class="page center preparing" id="main" data-testid="preparing">
        <h1>{t('launch.preparing')}</h1>
        <p>{phase.result.desktop.name}: <strong>{t(`state.${current}`, { defaultValue: current.replace('_', ' ') })}</strong> {t('sessions.for', { duration: formatDuration(Date.now() - phase.since) })}</p>
        <progress aria-label={t('launch.preparing')} max={steps.length} value={idx < 0 ? 1 : idx + 0.5} />
        <ol class="steps">
          {steps.map((s, i) => (
            <li key={s.state} class={i < idx || (idx < 0 && i === 0) ? 'done' : i === idx ? 'current' : ''}>{t(s.label)}</li>
          ))}
        </ol>
        <p class="muted">{t('launch.usually')}</p>
        <button type="button" onClick={() => props.onLeave(tr('launch.stillPreparing'))}>{t('viewer.back')}</button>
      </main>
    );
  }
  const { result } = phase;
  const session = result.session.id;
  const kiosk = !!props.kiosk;
  return (
    <Viewer
      key={session}
      title={result.desktop.name}
      readOnly={false}
      session={session}
      launchedAt={launchedAt}
      ticket={async () => {
        try {
          return await api.post<Ticket>(`/me/sessions/${enc(session)}/connect`);
        } catch (e) {
          if (e instanceof ApiError && (e.status === 404 || e.status === 403)) throw new FatalTicketError(tr('launch.sessionEnded'));
          throw new Error(describeError(e));
        }
      }}
      onDisconnect={(ended) => {
        if (!ended) return props.onLeave(leaveNotice('disconnected', result.desktop.name, kiosk));
        const e = endedText(ended, kiosk ? tr('launch.yourDesktop') : result.desktop.name);
        props.onLeave(`${e.title} ${e.detail}`);
      }}
      onRelaunch={() => {
        setPhase({ kind: 'requesting' });
        setLaunchedAt(Date.now());
        setRound((n) => n + 1);
      }}
      onLogoff={async () => {
        try {
          await api.post(`/me/sessions/${enc(session)}/logoff`);
          props.onLeave(leaveNotice('logged-off', result.desktop.name, kiosk));
        } catch (e) {
          props.onLeave(tr('ui.failed', { action: tr('viewer.logoff'), error: describeError(e) }));
        }
      }}
    />
  );
}
