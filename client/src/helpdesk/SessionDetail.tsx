// One session (/helpdesk/sessions/:id): who, where (desktop, host, client address, browser),
// when (connected, disconnected), the tunnel's live figures (bytes, bandwidth, round trip of the
// Guacamole sync), idle time, the logon timeline as its phases arrive; actions log off,
// disconnect (close the user's tunnel, the session stays), message, shadow.
import { api, enc } from '../api.ts';
import { t as tr, useT } from '../i18n/index.ts';
import { formatBytes, formatDateTime, formatDuration, formatMs } from '../i18n/format.ts';
import { navigate } from '../router.tsx';
import { LOGON_PHASES, type LogonTimeline, type Session } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';
import { MessageDialog, Timeline, phaseLabel, seconds } from './Sessions.tsx';
import { useState } from 'preact/hooks';

export interface SessionStats {
  bytesToClient: number; bytesFromClient: number; bandwidthBps: number; rttMs: number | null; lastInputAt: number | null;
  clientAddress: string; userAgent: string; connectedAt: number; updatedAt: number;
}

export interface SessionDetailView {
  session: Session & { bytesIn: number; bytesOut: number };
  desktop: { id: string; name: string; host: string; provider: string; state: string } | null;
  pool: { name: string; displayName: string } | null;
  stats: SessionStats | null;
  idleSeconds: number | null;
}

export const bytes = formatBytes;

const rate = (bps: number) => `${bytes(Math.round(bps))}/s`;
const time = formatDateTime;

/** A short name for a User-Agent: browser and device, e.g. "Chrome 120 on Linux". */
export function browserOf(ua: string): string {
  if (!ua) return '—';
  const b = /Edg\/(\d+)/.exec(ua) ? `Edge ${/Edg\/(\d+)/.exec(ua)![1]}` : /Firefox\/(\d+)/.exec(ua) ? `Firefox ${/Firefox\/(\d+)/.exec(ua)![1]}` : /Chrom(?:e|ium)\/(\d+)/.exec(ua) ? `Chrome ${/Chrom(?:e|ium)\/(\d+)/.exec(ua)![1]}` : /Version\/(\d+).*Safari/.exec(ua) ? `Safari ${/Version\/(\d+)/.exec(ua)![1]}` : tr('detail.browser');
  const os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS' : /CrOS/.test(ua) ? 'ChromeOS' : /Linux/.test(ua) ? 'Linux' : tr('detail.unknownDevice');
  return tr('detail.browserOn', { browser: /Headless/.test(ua) ? tr('detail.headless', { browser: b }) : b, os });
}

function Phases(props: { logon: LogonTimeline | undefined }) {
  const t = useT();
  const l = props.logon ?? {};
  const known = LOGON_PHASES.filter((p) => l[p] !== undefined);
  if (!known.length) return <p class="muted" data-testid="logon-phases">{t('detail.noPhases')}</p>;
  return (
    <>
      <Timeline logon={l} />
      <ol class="phases" data-testid="logon-phases">
        {known.map((p) => <li key={p}>{phaseLabel(p)}: <strong>{seconds(l[p]!)}</strong></li>)}
        {l.click_to_usable !== undefined && <li>{t('phase.click_to_usable')}: <strong>{seconds(l.click_to_usable)}</strong></li>}
      </ol>
    </>
  );
}

export function SessionDetail(props: { id: string }) {
  const id = props.id;
  const { data, error, reload } = usePoll(() => api.get<SessionDetailView>(`/sessions/${enc(id)}`), 2000, [id], true);
  const { ask, dialog, banner } = useActions();
  const [messageTo, setMessageTo] = useState<Session | null>(null);
  const [sent, setSent] = useState<{ ok: boolean; text: string } | null>(null);
  const t = useT();
  const s = data?.session;
  const st = data?.stats;
  const desktopName = data?.desktop?.name ?? s?.desktop ?? '';
  const rows: [string, preact.ComponentChildren, string][] = s ? [
    [t('col.user'), s.user, 'user'],
    [t('col.desktop'), <>{desktopName} {data?.desktop && <StateBadge state={data.desktop.state} />}</>, 'desktop'],
    [t('col.pool'), data?.pool ? `${data.pool.displayName} (${data.pool.name})` : s.pool, 'pool'],
    [t('detail.host'), data?.desktop ? `${data.desktop.host || '—'} (${data.desktop.provider})` : '—', 'host'],
    [t('col.clientAddress'), st?.clientAddress || s.clientAddress || '—', 'client-address'],
    [t('detail.browserDevice'), <>{browserOf(st?.userAgent ?? '')}{s.device && <> · {t('detail.enrolledDevice', { name: s.device.name })}</>}</>, 'browser'],
    [t('col.state'), <><StateBadge state={s.state} />{s.endReason && s.state === 'ended' ? ` (${s.endReason})` : ''}</>, 'state'],
    [t('detail.connected'), s.connectedAt ? t('detail.connectedAt', { time: time(s.connectedAt), ago: formatDuration(Date.now() - s.connectedAt) }) : '—', 'connected-at'],
    [t('detail.disconnected'), s.disconnectedAt ? `${time(s.disconnectedAt)}` : '—', 'disconnected-at'],
    [t('detail.bytes'), st ? `${bytes(st.bytesToClient)} / ${bytes(st.bytesFromClient)}` : t('detail.bytesClosed', { out: bytes(s.bytesOut ?? 0), in: bytes(s.bytesIn ?? 0) }), 'bytes'],
    [t('detail.bandwidth'), st ? rate(st.bandwidthBps) : '—', 'bandwidth'],
    [t('detail.rtt'), st?.rttMs !== null && st?.rttMs !== undefined ? formatMs(st.rttMs) : '—', 'rtt'],
    [t('detail.idle'), data?.idleSeconds !== null && data?.idleSeconds !== undefined ? formatDuration(data.idleSeconds * 1000) : '—', 'idle'],
  ] : [];
  return (
    <section>
      <p><a href="/helpdesk/sessions" onClick={(e) => { e.preventDefault(); navigate('/helpdesk/sessions'); }}>← {t('nav.sessions')}</a></p>
      <h1>{s ? t('detail.heading', { user: s.user, desktop: desktopName }) : t('detail.session')}</h1>
      <ErrorLine error={error} />
      {banner}
      {sent && <p class={`banner ${sent.ok ? 'ok' : 'bad'}`} role="status" aria-live="polite">{sent.text}</p>}
      {s && (
        <>
          <div class="actions">
            <button type="button" disabled={s.state !== 'connected'} title={s.state === 'connected' ? t('detail.shadowTitle') : t('sessions.notConnected')} onClick={() => navigate(`/helpdesk/shadow/${enc(s.id)}`)}>{t('sessions.shadow')}</button>
            <button type="button" disabled={s.state === 'ended'} onClick={() => { setSent(null); setMessageTo(s); }}>{t('sessions.message')}</button>
            <button type="button" disabled={s.state !== 'connected'} onClick={() => ask({
              title: t('detail.disconnectUser', { user: s.user }), action: t('detail.disconnect'),
              body: <p>{t('detail.disconnectBody', { user: s.user })}</p>,
              run: async () => { await api.post(`/sessions/${enc(s.id)}/disconnect`); reload(); return tr('detail.wasDisconnected', { user: s.user }); },
            })}>{t('detail.disconnect')}</button>
            <button type="button" class="danger" disabled={s.state === 'ended'} onClick={() => ask({
              title: t('sessions.logoffUser', { user: s.user }), action: t('sessions.logoff'), danger: true,
              body: <p>{t('sessions.logoffBody', { user: s.user, desktop: desktopName })}</p>,
              run: async () => { await api.post(`/sessions/${enc(s.id)}/logoff`); reload(); return tr('sessions.wasLoggedOff', { user: s.user }); },
            })}>{t('sessions.logoff')}</button>
          </div>
          <table class="grid detail" data-testid="session-detail">
            <tbody>
              {rows.map(([label, value, key]) => <tr key={key} data-field={key}><th scope="row">{label}</th><td>{value}</td></tr>)}
            </tbody>
          </table>
          <h2>{t('detail.timeline')}</h2>
          <Phases logon={s.logon} />
        </>
      )}
      {dialog}
      <MessageDialog target={messageTo} name={desktopName} onClose={() => setMessageTo(null)} onSent={(ok, text) => setSent({ ok, text })} />
    </section>
  );
}
