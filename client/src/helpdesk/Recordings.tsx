// Session recordings (helpdesk): list with filters, and a player (guacamole-common-js's
// Guacamole.SessionRecording) with play/pause, a seek bar and the duration. Playing fetches the
// recording through the API, which audits it (recording.play); admins may delete one.
import { useEffect, useRef, useState } from 'preact/hooks';
import Guacamole from 'guacamole-common-js';
import { api, describeError, enc } from '../api.ts';
import { ErrorLine, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';
import { formatBytes, formatDateTime, formatDuration } from '../i18n/format.ts';

export interface RecordingRow {
  id: string; session: string; user: string; desktop: string; pool: string; policy: string;
  startedAt: string; endedAt: string | null; durationMs: number | null; bytes: number;
}

/** The part of Guacamole.SessionRecording the player uses (guacamole.d.ts does not declare it). */
interface SessionRecording {
  getDisplay(): { getElement(): HTMLElement; getWidth(): number; getHeight(): number; scale(s: number): void };
  connect(data?: string): void;
  disconnect(): void;
  abort(): void;
  play(): void;
  pause(): void;
  seek(position: number, done?: () => void): void;
  isPlaying(): boolean;
  getPosition(): number;
  getDuration(): number;
  onload: (() => void) | null;
  onerror: ((message: string) => void) | null;
  onprogress: ((duration: number, parsedSize: number) => void) | null;
  onplay: (() => void) | null;
  onpause: (() => void) | null;
  onseek: ((position: number, current: number, total: number) => void) | null;
}
const G = Guacamole as unknown as { SessionRecording: new (source: unknown) => SessionRecording; StaticHTTPTunnel: new (url: string) => unknown };
const SessionRecordingCtor = G.SessionRecording;
const StaticTunnel = G.StaticHTTPTunnel;

const clock = (ms: number) => {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

function Player(props: { rec: RecordingRow; onClose: () => void }) {
  const screen = useRef<HTMLDivElement>(null);
  const player = useRef<SessionRecording | null>(null);
  const [state, setState] = useState({ loaded: false, playing: false, position: 0, duration: 0 });
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let gone = false;
    let rec: SessionRecording | null = null;
    // guacamole-common-js 1.5.0 cannot play a Blob (its Blob path reads an unset variable): the
    // recording is streamed through its StaticHTTPTunnel (fetch, same-origin cookie) instead.
    try {
      rec = new SessionRecordingCtor(new StaticTunnel(`/api/v1/recordings/${enc(props.rec.id)}/file`));
      player.current = rec;
      screen.current?.replaceChildren(rec.getDisplay().getElement());
      rec.onprogress = (duration) => !gone && setState((s) => ({ ...s, duration }));
      rec.onload = () => !gone && setState((s) => ({ ...s, loaded: true, duration: rec!.getDuration() }));
      rec.onerror = (m) => !gone && setError(t('recordingsM.theRecordingCannotBePlayed', { m: m }));
      rec.onplay = () => !gone && setState((s) => ({ ...s, playing: true }));
      rec.onpause = () => !gone && setState((s) => ({ ...s, playing: false, position: rec!.getPosition() }));
      rec.onseek = (position) => !gone && setState((s) => ({ ...s, position }));
      rec.connect();
    } catch (e) {
      setError(describeError(e));
    }
    return () => {
      gone = true;
      rec?.pause();
      rec?.abort();
      rec?.disconnect();
    };
  }, [props.rec.id]);

  // guacamole-common-js assembles the recording it seeks in only once the whole file is read:
  // play and seek wait for onload (an earlier seek would replay empty frames).
  const p = state.loaded ? player.current : null;
  return (
    <section class="recording-player" data-testid="recording-player" data-loaded={String(state.loaded)} aria-label={t('recordings.playerLabel', { user: props.rec.user })}>
      <h2>{t('recordings.playerTitle', { user: props.rec.user, pool: props.rec.pool, when: formatDateTime(props.rec.startedAt) })}</h2>
      <ErrorLine error={error} />
      <div class="buttons">
        <button type="button" data-testid="recording-play" disabled={!p} onClick={() => (p?.isPlaying() ? p.pause() : p?.play())}>{state.playing ? t('recordings.pause') : t('recordings.play')}</button>
        <input
          type="range" data-testid="recording-seek" aria-label={t('recordings.position')} min={0} max={Math.max(1, state.duration)} step={100} value={state.position} disabled={!p}
          onInput={(e) => p?.seek(Number((e.target as HTMLInputElement).value))}
        />
        <span data-testid="recording-time">{clock(state.position)} / <span data-testid="recording-duration">{clock(state.duration)}</span></span>
        {!state.loaded && <span class="muted">{t('recordings.loading')}</span>}
        <button type="button" onClick={props.onClose}>{t('recordings.close')}</button>
      </div>
      <div class="screen" data-testid="recording-screen" ref={screen} />
    </section>
  );
}

export function Recordings() {
  const [f, setF] = useState({ user: '', desktop: '', pool: '', since: '', until: '' });
  const [offset, setOffset] = useState(0);
  const [playing, setPlaying] = useState<RecordingRow | null>(null);
  const [msg, setMsg] = useState<string | null>(null);
  const limit = 50;
  const q = new URLSearchParams();
  for (const k of ['user', 'desktop', 'pool'] as const) if (f[k]) q.set(k, f[k]);
  if (f.since) q.set('since', new Date(f.since).toISOString());
  if (f.until) q.set('until', new Date(f.until).toISOString());
  q.set('offset', String(offset));
  q.set('limit', String(limit));
  const qs = q.toString();
  const { data, error, reload } = usePoll(() => api.get<{ recordings: RecordingRow[]; total: number }>(`/recordings?${qs}`), 15_000, [qs]);
  const set = (k: keyof typeof f) => (e: Event) => { setOffset(0); setF({ ...f, [k]: (e.target as HTMLInputElement).value }); };
  const remove = async (r: RecordingRow) => {
    if (!confirm(t('recordingsM.deleteTheRecordingOfUser', { user: r.user, v: formatDateTime(r.startedAt) }))) return;
    try {
      await api.del(`/recordings/${enc(r.id)}`);
      if (playing?.id === r.id) setPlaying(null);
      setMsg(t('recordings.deleted'));
      reload();
    } catch (e) {
      setMsg(describeError(e));
    }
  };
  return (
    <section>
      <h1>{t('recordings.recordings')}</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>{t('recordings.user')}{' '}<input name="user" value={f.user} onInput={set('user')} /></label>
        <label>{t('recordings.desktop')}{' '}<input name="desktop" value={f.desktop} onInput={set('desktop')} placeholder={t('recordings.desktopId')} /></label>
        <label>{t('recordings.pool')}{' '}<input name="pool" value={f.pool} onInput={set('pool')} /></label>
        <label>{t('recordings.from')}{' '}<input type="datetime-local" name="since" value={f.since} onInput={set('since')} /></label>
        <label>{t('recordings.to')}{' '}<input type="datetime-local" name="until" value={f.until} onInput={set('until')} /></label>
      </form>
      <ErrorLine error={error} />
      {msg && <p class="banner" role="status">{msg}</p>}
      {playing && <Player key={playing.id} rec={playing} onClose={() => setPlaying(null)} />}
      <table class="grid" data-testid="recordings">
        <thead><tr><th>{t('recordings.started')}</th><th>{t('recordings.user')}</th><th>{t('recordings.pool')}</th><th>{t('recordings.desktop')}</th><th>{t('recordings.length')}</th><th>{t('recordings.size')}</th><th /></tr></thead>
        <tbody>
          {data?.recordings.map((r) => (
            <tr key={r.id} data-recording={r.id}>
              <td>{formatDateTime(r.startedAt)}</td>
              <td>{r.user}</td>
              <td>{r.pool}</td>
              <td class="small">{r.desktop}</td>
              <td>{r.durationMs === null ? t('recordings.recording') : formatDuration(r.durationMs)}</td>
              <td>{formatBytes(r.bytes)}</td>
              <td class="buttons">
                <button type="button" data-testid="recording-open" onClick={() => setPlaying(r)}>{t('recordings.play')}</button>
                <a href={`/api/v1/recordings/${enc(r.id)}/file?download=1`}>{t('recordings.download')}</a>
                <button type="button" class="danger" onClick={() => void remove(r)}>{t('recordings.delete')}</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && !data.recordings.length && <p class="muted">{t('recordings.noRecordingsMatch')}</p>}
      <div class="buttons">
        <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - limit))}>{t('recordings.newer')}</button>
        <button type="button" disabled={!data || offset + limit >= data.total} onClick={() => setOffset(offset + limit)}>{t('recordings.older')}</button>
        {data && <span class="muted">{t('recordings.total', { count: data.total })}</span>}
      </div>
    </section>
  );
}
