// Launch: request a desktop, show real progress while it is prepared (202 → poll the pool),
// then open the viewer with a fresh ticket per connection attempt.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, call, describeError, enc, formatDuration } from '../api.ts';
import type { MyPool, RequestResult, Ticket } from '../types.ts';
import { Viewer } from '../viewer/Viewer.tsx';
import { FatalTicketError } from '../viewer/viewer.ts';

type Phase =
  | { kind: 'requesting' }
  | { kind: 'preparing'; result: RequestResult; state: string; since: number; seen: string[] }
  | { kind: 'viewer'; result: RequestResult }
  | { kind: 'failed'; message: string };

const STEPS: { state: string; label: string }[] = [
  { state: 'requested', label: 'Desktop requested' },
  { state: 'provisioning', label: 'Cloning and booting a desktop' },
  { state: 'refreshing', label: 'Refreshing your desktop' },
  { state: 'in_use', label: 'Desktop ready' },
];

export function Launch(props: { pool: string; onLeave: (notice: string) => void }) {
  const [phase, setPhase] = useState<Phase>({ kind: 'requesting' });
  const [, tick] = useState(0);
  // The Launch click (this page opens on it): the logon timeline's first frame counts from here.
  const [launchedAt] = useState(() => Date.now());

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
          if (d?.state === 'error') return setPhase({ kind: 'failed', message: `Your desktop ${d.name} could not be prepared. The helpdesk can see what went wrong.` });
          if (!d) return setPhase({ kind: 'failed', message: 'The desktop request was cancelled.' });
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
  }, [props.pool]);

  if (phase.kind === 'requesting') return <main class="page center"><p class="spinner" role="status">Finding your desktop…</p></main>;
  if (phase.kind === 'failed') {
    return (
      <main class="page center">
        <p class="banner bad" role="alert">{phase.message}</p>
        <button type="button" onClick={() => props.onLeave('')}>Back to my desktops</button>
      </main>
    );
  }
  if (phase.kind === 'preparing') {
    const current = phase.state;
    const steps = STEPS.filter((s) => s.state !== 'refreshing' || phase.seen.includes('refreshing')).filter((s) => s.state !== 'provisioning' || !phase.seen.includes('refreshing') || phase.seen.includes('provisioning'));
    const idx = steps.findIndex((s) => s.state === current);
    return (
      <main class="page center preparing" data-testid="preparing">
        <h1>Preparing your desktop</h1>
        <p>{phase.result.desktop.name}: <strong>{current.replace('_', ' ')}</strong> for {formatDuration(Date.now() - phase.since)}</p>
        <progress max={steps.length} value={idx < 0 ? 1 : idx + 0.5} />
        <ol class="steps">
          {steps.map((s, i) => (
            <li key={s.state} class={i < idx || (idx < 0 && i === 0) ? 'done' : i === idx ? 'current' : ''}>{s.label}</li>
          ))}
        </ol>
        <p class="muted">This usually takes under a minute. You can leave this page; the desktop stays reserved for you.</p>
        <button type="button" onClick={() => props.onLeave('Your desktop is still being prepared; launch it again in a moment.')}>Back</button>
      </main>
    );
  }
  const { result } = phase;
  const session = result.session.id;
  return (
    <Viewer
      title={result.desktop.name}
      readOnly={false}
      session={session}
      launchedAt={launchedAt}
      ticket={async () => {
        try {
          return await api.post<Ticket>(`/me/sessions/${enc(session)}/connect`);
        } catch (e) {
          if (e instanceof ApiError && (e.status === 404 || e.status === 403)) throw new FatalTicketError('Your session has ended (logged off by the helpdesk or a timeout).');
          throw new Error(describeError(e));
        }
      }}
      onDisconnect={() => props.onLeave(`Disconnected from ${result.desktop.name}. It keeps running with your apps open; launch it again to reconnect.`)}
      onLogoff={async () => {
        try {
          await api.post(`/me/sessions/${enc(session)}/logoff`);
          props.onLeave(`Logged off from ${result.desktop.name}.`);
        } catch (e) {
          props.onLeave(`Log off failed: ${describeError(e)}`);
        }
      }}
    />
  );
}
