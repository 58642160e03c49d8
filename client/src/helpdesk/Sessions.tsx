// Live sessions: logon timeline, send a message, log off, shadow read-only.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, describeError, enc, formatDuration } from '../api.ts';
import { navigate } from '../router.tsx';
import { LOGON_PHASES, type Desktop, type LogonTimeline, type Session } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';

const PHASE_LABELS: Record<(typeof LOGON_PHASES)[number], string> = {
  authentication: 'Login',
  assignment: 'Assignment',
  desktop_ready: 'Boot wait',
  home_mapped: 'Home folder mapped',
  tunnel_connected: 'Tunnel connected',
  first_frame: 'First frame (from Launch)',
  guest_logon: 'Guest logon (from request)',
};

const seconds = (ms: number) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`);

/**
 * A session's logon timeline: the sequential phases as a bar (widths by duration), the rest
 * in the tooltip and the list below. first_frame and guest_logon count from the click, so they
 * are shown as totals, not segments.
 */
function Timeline(props: { logon: LogonTimeline | undefined }) {
  const l = props.logon ?? {};
  const known = LOGON_PHASES.filter((p) => l[p] !== undefined);
  if (!known.length) return <span class="muted small">—</span>;
  const bar = (['authentication', 'assignment', 'desktop_ready', 'home_mapped', 'tunnel_connected'] as const).filter((p) => l[p] !== undefined);
  const total = bar.reduce((a, p) => a + (l[p] ?? 0), 0) || 1;
  const lines = known.map((p) => `${PHASE_LABELS[p]}: ${seconds(l[p]!)}`);
  if (l.click_to_usable !== undefined) lines.push(`Click to usable: ${seconds(l.click_to_usable)}`);
  return (
    <span class="logon" data-testid="logon-timeline" title={lines.join('\n')}>
      <span class="timeline" role="img" aria-label={lines.join(', ')}>
        {bar.map((p) => <span key={p} class={`ph-${p}`} style={{ width: `${((l[p] ?? 0) / total) * 100}%` }} />)}
      </span>
      <span class="small">{l.click_to_usable !== undefined ? `usable in ${seconds(l.click_to_usable)}` : l.first_frame !== undefined ? `first frame ${seconds(l.first_frame)}` : 'logging on…'}</span>
    </span>
  );
}

/** The helpdesk's message to a session's user: a title and a text, shown over their viewer and in the guest. */
function MessageDialog(props: { target: Session | null; name: string; onClose: () => void; onSent: (ok: boolean, text: string) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [title, setTitle] = useState('');
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.target) {
      setTitle('Message from the helpdesk');
      setText('');
      setError(null);
      if (!d.open) d.showModal();
    } else if (d.open) d.close();
  }, [props.target]);
  const s = props.target;
  return (
    <dialog ref={ref} class="confirm" onClose={() => props.onClose()}>
      {s && (
        <form
          method="dialog"
          class="message-form"
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            try {
              const r = await api.post<{ message: { guest: boolean } }>(`/sessions/${enc(s.id)}/message`, { title, text });
              props.onSent(true, `Message shown to ${s.user} in their viewer${r.message.guest ? ' and on the desktop' : ' (the desktop\'s agent did not show it)'}.`);
              props.onClose();
            } catch (err) {
              // Stay open with what was typed, and say what the server refused.
              setError(describeError(err));
            } finally {
              setBusy(false);
            }
          }}
        >
          <h2>Message to {s.user}</h2>
          <p class="muted small">Shown over {s.user}'s viewer until they dismiss it, and on {props.name} if its agent runs.</p>
          <label>
            Title
            <input name="title" value={title} required maxLength={80} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
          </label>
          <label>
            Text
            <textarea name="text" rows={4} value={text} required maxLength={1000} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
          </label>
          <ErrorLine error={error} />
          <div class="buttons">
            <button type="button" onClick={() => props.onClose()} disabled={busy}>Cancel</button>
            <button type="submit" class="primary" disabled={busy}>{busy ? 'Sending…' : 'Send'}</button>
          </div>
        </form>
      )}
    </dialog>
  );
}

export function Sessions() {
  const { data, error, reload } = usePoll(async () => {
    const [{ sessions }, { desktops }] = await Promise.all([api.get<{ sessions: Session[] }>('/sessions'), api.get<{ desktops: Desktop[] }>('/desktops')]);
    return { sessions, names: new Map(desktops.map((d) => [d.id, d.name])) };
  }, 10_000, [], true);
  const { ask, dialog, banner } = useActions();
  const [messageTo, setMessageTo] = useState<Session | null>(null);
  const [sent, setSent] = useState<{ ok: boolean; text: string } | null>(null);
  return (
    <section>
      <h1>Sessions</h1>
      <ErrorLine error={error} />
      {banner}
      {sent && <p class={`banner ${sent.ok ? 'ok' : 'bad'}`} role="status">{sent.text}</p>}
      <table class="grid">
        <thead><tr><th>User</th><th>Desktop</th><th>Pool</th><th>Client address</th><th>State</th><th>Duration</th><th>Logon</th><th>Actions</th></tr></thead>
        <tbody>
          {data?.sessions.map((s) => (
            <tr key={s.id} data-session={s.id} data-user={s.user}>
              <td>{s.user}</td>
              <td>{data.names.get(s.desktop) ?? s.desktop}</td>
              <td>{s.pool}</td>
              <td>{s.clientAddress}{s.device && <span class="small" data-testid="session-device" title="Enrolled device"> on {s.device.name}</span>}</td>
              <td><StateBadge state={s.state} />{s.state === 'disconnected' && s.disconnectedAt ? <span class="muted small"> for {formatDuration(Date.now() - s.disconnectedAt)}</span> : null}</td>
              <td>{formatDuration(Date.now() - s.createdAt)}</td>
              <td><Timeline logon={s.logon} /></td>
              <td class="actions">
                <button type="button" disabled={s.state !== 'connected'} title={s.state === 'connected' ? 'Watch the screen (read-only)' : 'The user is not connected'} onClick={() => navigate(`/helpdesk/shadow/${enc(s.id)}`)}>Shadow</button>
                <button type="button" title="Show the user a message over their desktop" onClick={() => { setSent(null); setMessageTo(s); }}>Message</button>
                <button type="button" class="danger" onClick={() => ask({
                  title: `Log off ${s.user}`, action: 'Log off', danger: true,
                  body: <p>Ends {s.user}'s session on {data?.names.get(s.desktop) ?? s.desktop}. Their apps close and unsaved work is lost; a non-persistent desktop is refreshed.</p>,
                  run: async () => { await api.post(`/sessions/${enc(s.id)}/logoff`); reload(); return `${s.user} was logged off.`; },
                })}>Log off</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.sessions.length === 0 && <p class="muted">No live sessions.</p>}
      {dialog}
      <MessageDialog target={messageTo} name={messageTo ? (data?.names.get(messageTo.desktop) ?? messageTo.desktop) : ''} onClose={() => setMessageTo(null)} onSent={(ok, text) => setSent({ ok, text })} />
    </section>
  );
}
