// Live sessions: the server-paged table (search, sort, pool/state filters in the URL, bulk log
// off with one confirmation), logon timeline, send a message, log off, shadow; the user's name
// opens the session's detail page (SessionDetail.tsx).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, bulkLogoff, describeError, enc, type ListAnswer } from '../api.ts';
import { t as tr, useT } from '../i18n/index.ts';
import { formatDuration, formatMs } from '../i18n/format.ts';
import { navigate } from '../router.tsx';
import { LOGON_PHASES, type Desktop, type LogonTimeline, type Pool, type Session } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';
import { Table, useUrlQuery, type BulkAction, type Column } from './Table.tsx';

/** A logon phase's name in the user's language. */
export const phaseLabel = (p: (typeof LOGON_PHASES)[number]): string => tr(`phase.${p}`);

export const seconds = formatMs;

/**
 * A session's logon timeline: the sequential phases as a bar (widths by duration), the rest
 * in the tooltip and the list below. first_frame and guest_logon count from the click, so they
 * are shown as totals, not segments.
 */
export function Timeline(props: { logon: LogonTimeline | undefined }) {
  const t = useT();
  const l = props.logon ?? {};
  const known = LOGON_PHASES.filter((p) => l[p] !== undefined);
  if (!known.length) return <span class="muted small">—</span>;
  const bar = (['authentication', 'assignment', 'desktop_ready', 'home_mapped', 'tunnel_connected'] as const).filter((p) => l[p] !== undefined);
  const total = bar.reduce((a, p) => a + (l[p] ?? 0), 0) || 1;
  const lines = known.map((p) => `${phaseLabel(p)}: ${seconds(l[p]!)}`);
  if (l.click_to_usable !== undefined) lines.push(`${t('phase.click_to_usable')}: ${seconds(l.click_to_usable)}`);
  return (
    <span class="logon" data-testid="logon-timeline" title={lines.join('\n')}>
      <span class="timeline" role="img" aria-label={lines.join(', ')}>
        {bar.map((p) => <span key={p} class={`ph-${p}`} style={{ width: `${((l[p] ?? 0) / total) * 100}%` }} />)}
      </span>
      <span class="small">{l.click_to_usable !== undefined ? t('sessions.usableIn', { time: seconds(l.click_to_usable) }) : l.first_frame !== undefined ? t('sessions.firstFrame', { time: seconds(l.first_frame) }) : t('sessions.loggingOn')}</span>
    </span>
  );
}

/** The helpdesk's message to a session's user: a title and a text, shown over their viewer and in the guest. */
export function MessageDialog(props: { target: Session | null; name: string; onClose: () => void; onSent: (ok: boolean, text: string) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [title, setTitle] = useState('');
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const t = useT();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.target) {
      setTitle(tr('message.defaultTitle'));
      setText('');
      setError(null);
      if (!d.open) d.showModal();
    } else if (d.open) d.close();
  }, [props.target]);
  const s = props.target;
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="message-title" onClose={() => props.onClose()}>
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
              props.onSent(true, r.message.guest ? tr('message.sentGuest', { user: s.user }) : tr('message.sentViewer', { user: s.user }));
              props.onClose();
            } catch (err) {
              // Stay open with what was typed, and say what the server refused.
              setError(describeError(err));
            } finally {
              setBusy(false);
            }
          }}
        >
          <h2 id="message-title">{t('message.to', { user: s.user })}</h2>
          <p class="muted small">{t('message.hint', { user: s.user, desktop: props.name })}</p>
          <label>
            {t('message.title')}
            <input name="title" value={title} required maxLength={80} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
          </label>
          <label>
            {t('message.text')}
            <textarea name="text" rows={4} value={text} required maxLength={1000} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
          </label>
          <ErrorLine error={error} />
          <div class="buttons">
            <button type="button" onClick={() => props.onClose()} disabled={busy}>{t('common.cancel')}</button>
            <button type="submit" class="primary" disabled={busy}>{busy ? t('message.sending') : t('message.send')}</button>
          </div>
        </form>
      )}
    </dialog>
  );
}

/** Desktop names by id (they never change): looked up once per desktop shown. */
const desktopNames = new Map<string, string>();

async function withNames(page: ListAnswer<Session>): Promise<ListAnswer<Session>> {
  const unknown = [...new Set(page.items.map((s) => s.desktop))].filter((id) => !desktopNames.has(id));
  await Promise.all(unknown.map((id) => api.get<{ desktop: Desktop }>(`/desktops/${enc(id)}`).then((r) => void desktopNames.set(id, r.desktop.name), () => undefined)));
  return page;
}

const SESSION_STATES = ['starting', 'connected', 'disconnected'] as const;

export function Sessions() {
  const url = useUrlQuery();
  const pools = usePoll(() => api.get<{ pools: Pool[] }>('/pools'), 30_000, [], false).data?.pools ?? [];
  const { ask, dialog, banner } = useActions();
  const [bump, setBump] = useState(0);
  const [messageTo, setMessageTo] = useState<Session | null>(null);
  const [sent, setSent] = useState<{ ok: boolean; text: string } | null>(null);
  const t = useT();
  const nameOf = (s: Session) => desktopNames.get(s.desktop) ?? s.desktop;
  const detail = (s: Session) => `/helpdesk/sessions/${enc(s.id)}`;
  const sel = (k: string) => (e: Event) => url.set({ [k]: (e.target as HTMLSelectElement).value });
  const columns: Column<Session>[] = [
    { key: 'user', label: t('col.user'), sortable: true, render: (s) => <a href={detail(s)} title={t('sessions.details')} onClick={(e) => { e.preventDefault(); navigate(detail(s)); }}>{s.user}</a> },
    { key: 'desktop', label: t('col.desktop'), sortable: true, render: nameOf },
    { key: 'pool', label: t('col.pool'), sortable: true, render: (s) => s.pool },
    { key: 'clientAddress', label: t('col.clientAddress'), sortable: true, render: (s) => <>{s.clientAddress}{s.device && <span class="small" data-testid="session-device" title={t('sessions.enrolledDevice')}> {t('sessions.onDevice', { name: s.device.name })}</span>}</> },
    { key: 'state', label: t('col.state'), sortable: true, render: (s) => <><StateBadge state={s.state} />{s.state === 'disconnected' && s.disconnectedAt ? <span class="muted small"> {t('sessions.for', { duration: formatDuration(Date.now() - s.disconnectedAt) })}</span> : null}</> },
    { key: 'createdAt', label: t('col.duration'), sortable: true, render: (s) => formatDuration(Date.now() - s.createdAt) },
    { key: 'logon', label: t('col.logon'), render: (s) => <Timeline logon={s.logon} /> },
  ];
  const bulk: BulkAction<Session>[] = [{
    label: t('sessions.logoff'), danger: true, done: t('sessions.loggedOff'),
    describe: (rows) => <><p>{t('sessions.bulkLogoffBody')}</p><ul>{rows.map((s) => <li key={s.id}>{t('sessions.userOn', { user: s.user, desktop: nameOf(s) })}</li>)}</ul></>,
    run: (rows) => bulkLogoff(rows.map((s) => s.id)),
  }];
  return (
    <section>
      <h1>{t('nav.sessions')}</h1>
      {banner}
      {sent && <p class={`banner ${sent.ok ? 'ok' : 'bad'}`} role="status" aria-live="polite">{sent.text}</p>}
      <Table<Session>
        url={url}
        testId="sessions-table"
        columns={columns}
        rowKey={(s) => s.id}
        rowAttrs={(s) => ({ 'data-session': s.id, 'data-user': s.user })}
        load={(qs) => api.get<ListAnswer<Session>>(`/sessions?${qs}`).then(withNames)}
        filterKeys={['pool', 'state', 'user']}
        defaultSort="createdAt"
        searchLabel={t('sessions.search')}
        empty={t('sessions.empty')}
        reloadKey={bump}
        bulk={bulk}
        filters={
          <>
            <label>{t('col.pool')} <select name="pool" value={url.get('pool')} onChange={sel('pool')}><option value="">{t('common.any')}</option>{pools.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}</select></label>
            <label>{t('col.state')} <select name="state" value={url.get('state')} onChange={sel('state')}><option value="">{t('common.any')}</option>{SESSION_STATES.map((st) => <option key={st} value={st}>{t(`state.${st}`)}</option>)}</select></label>
          </>
        }
        actions={(s) => (
          <>
            <button type="button" disabled={s.state !== 'connected'} title={s.state === 'connected' ? t('sessions.shadowTitle') : t('sessions.notConnected')} onClick={() => navigate(`/helpdesk/shadow/${enc(s.id)}`)}>{t('sessions.shadow')}</button>
            <button type="button" title={t('sessions.messageTitle')} onClick={() => { setSent(null); setMessageTo(s); }}>{t('sessions.message')}</button>
            <button type="button" class="danger" onClick={() => ask({
              title: t('sessions.logoffUser', { user: s.user }), action: t('sessions.logoff'), danger: true,
              body: <p>{t('sessions.logoffBody', { user: s.user, desktop: nameOf(s) })}</p>,
              run: async () => { await api.post(`/sessions/${enc(s.id)}/logoff`); setBump((n) => n + 1); return tr('sessions.wasLoggedOff', { user: s.user }); },
            })}>{t('sessions.logoff')}</button>
          </>
        )}
      />
      {dialog}
      <MessageDialog target={messageTo} name={messageTo ? nameOf(messageTo) : ''} onClose={() => setMessageTo(null)} onSent={(ok, text) => setSent({ ok, text })} />
    </section>
  );
}
