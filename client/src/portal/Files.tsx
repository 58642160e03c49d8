// "My files": the user's folder on the file share, through /api/v1/me/files. Works without a
// desktop. Folders open in the page (the URL names the folder: /files?path=a/b, with
// breadcrumbs); uploads send each file's raw bytes with XMLHttpRequest (upload progress and a
// Cancel button; several files at once, from the picker or dropped on the page); the quota is a
// bar of used / hard limit with the soft limit marked.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, call, csrfToken, describeError, enc } from '../api.ts';
import { navigate, useLocation } from '../router.tsx';
import { t } from '../i18n/index.ts';
import { formatBytes, formatDateTime, formatNumber } from '../i18n/format.ts';

/** The API says `folder` (server/shares/files.service.ts); `dir` is accepted too. */
interface Entry { name: string; type: 'file' | 'folder' | 'dir' | 'link' | 'other'; sizeBytes: number; modifiedAt: string }
interface Listing { path: string; entries: Entry[] }
interface Usage { usedBytes: number; softBytes: number; hardBytes: number; files?: number; overSoft?: boolean; overHard?: boolean }
interface Upload { name: string; loaded: number; total: number; done: number; count: number; cancel: () => void }

const join = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);
const isFolder = (e: Entry) => e.type === 'folder' || e.type === 'dir';
/** Counting a folder's contents before a recursive delete stops here (and says "more than"). */
const COUNT_LIMIT = 1000;

/** A byte count in the user's language (i18n/format.ts). */
export const size = formatBytes;

/** Small drawn icons (no emoji: not every system has a font for them). */
const FolderIcon = () => <svg class="icon" viewBox="0 0 16 16" aria-hidden="true"><path d="M1 3.5A1.5 1.5 0 0 1 2.5 2h3.6l1.5 1.5h5.9A1.5 1.5 0 0 1 15 5v7.5a1.5 1.5 0 0 1-1.5 1.5h-11A1.5 1.5 0 0 1 1 12.5z" fill="#e0a526" /></svg>;
const FileIcon = () => <svg class="icon" viewBox="0 0 16 16" aria-hidden="true"><path d="M3 1.5h6.5L13 5v9.5H3z" fill="#fff" stroke="#7a8394" /><path d="M9.5 1.5V5H13" fill="none" stroke="#7a8394" /></svg>;

const filesUrl = (dir: string) => (dir ? `/files?path=${enc(dir)}` : '/files');

/** Files and folders inside a folder, all levels down (stops at COUNT_LIMIT). */
async function countItems(path: string): Promise<{ n: number; more: boolean }> {
  let n = 0;
  const queue = [path];
  while (queue.length) {
    const l = await api.get<Listing>(`/me/files?path=${enc(queue.shift()!)}`);
    for (const e of l.entries) {
      if (++n >= COUNT_LIMIT) return { n, more: true };
      if (isFolder(e)) queue.push(join(l.path || path, e.name));
    }
  }
  return { n, more: false };
}

/** An upload the person cancelled (not a failure to report). */
class UploadCancelled extends Error {}

/** PUTs one file with upload progress; resolves when stored, rejects with the broker's message (or UploadCancelled). */
function put(path: string, f: File, onProgress: (loaded: number) => void, register: (abort: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', `/api/v1/me/files/content?path=${enc(path)}&overwrite=true`);
    x.setRequestHeader('content-type', 'application/octet-stream');
    x.setRequestHeader('x-csrf-token', csrfToken());
    x.upload.onprogress = (e) => onProgress(e.loaded);
    x.onload = () => {
      if (x.status >= 200 && x.status < 300) return resolve();
      let msg = t('files.uploadFailedHttp', { status: x.status });
      try {
        msg = (JSON.parse(x.responseText) as { error?: { message?: string } }).error?.message ?? msg;
      } catch {
        // not JSON
      }
      reject(new Error(msg));
    };
    x.onerror = () => reject(new Error(t('files.uploadInterrupted')));
    x.onabort = () => reject(new UploadCancelled());
    register(() => x.abort());
    x.send(f);
  });
}

export function MyFiles() {
  const { query } = useLocation();
  const dir = (query.get('path') ?? '').replace(/^\/+|\/+$/g, '');
  const [listing, setListing] = useState<Listing | null>(null);
  const [usage, setUsage] = useState<Usage | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [upload, setUpload] = useState<Upload | null>(null);
  const [dragging, setDragging] = useState(false);
  const picker = useRef<HTMLInputElement>(null);
  const cancelled = useRef(false);

  const load = async (path = dir) => {
    try {
      const [l, u] = await Promise.all([api.get<Listing>(`/me/files?path=${enc(path)}`), api.get<{ usage?: Usage } & Usage>('/me/files/usage')]);
      setListing(l);
      setUsage((u.usage ?? u) as Usage);
    } catch (e) {
      setMessage({ ok: false, text: describeError(e) });
    }
  };
  useEffect(() => {
    setListing(null);
    void load(dir);
  }, [dir]);

  const act = async (what: string, op: () => Promise<unknown>) => {
    try {
      await op();
      setMessage({ ok: true, text: what });
    } catch (e) {
      setMessage({ ok: false, text: describeError(e) });
    }
    await load();
  };

  const open = (path: string) => navigate(filesUrl(path));

  const uploadFiles = async (files: File[]) => {
    if (!files.length || upload) return;
    cancelled.current = false;
    const done: string[] = [];
    let failure: string | null = null;
    for (let i = 0; i < files.length && !cancelled.current; i++) {
      const f = files[i]!;
      const state: Upload = { name: f.name, loaded: 0, total: f.size, done: i, count: files.length, cancel: () => undefined };
      setUpload(state);
      try {
        await put(join(dir, f.name), f, (loaded) => setUpload((u) => (u ? { ...u, loaded } : u)), (abort) => {
          state.cancel = () => {
            cancelled.current = true;
            abort();
          };
          setUpload({ ...state });
        });
        done.push(f.name);
      } catch (e) {
        failure = e instanceof UploadCancelled ? t('files.uploadCancelled', { name: f.name }) : t('files.uploadFailed', { name: f.name, error: (e as Error).message });
        break;
      }
    }
    setUpload(null);
    if (picker.current) picker.current.value = '';
    const ok = done.length === 1 ? t('files.uploadedOne', { name: done[0] }) : done.length ? t('files.uploadedMany', { count: done.length }) : '';
    setMessage(failure ? { ok: false, text: [ok, failure].filter(Boolean).join(' ') } : { ok: true, text: ok });
    await load();
  };

  const remove = async (e: Entry, path: string) => {
    if (!isFolder(e)) {
      if (confirm(t('filesM.deleteName', { name: e.name }))) await act(t('files.deleted', { name: e.name }), () => call('DELETE', `/me/files?path=${enc(path)}`));
      return;
    }
    let count: { n: number; more: boolean };
    try {
      count = await countItems(path);
    } catch (err) {
      return setMessage({ ok: false, text: describeError(err) });
    }
    const what = count.n === 0 ? t('files.folderEmpty') : t(count.more ? 'files.folderHoldsMore' : 'files.folderHolds', { count: count.n });
    if (!confirm(t('filesM.deleteTheFolderNameWhat', { name: e.name, what: what }))) return;
    await act(count.n ? t(count.more ? 'files.deletedFolderWithMore' : 'files.deletedFolderWith', { name: e.name, count: count.n }) : t('files.deletedFolder', { name: e.name }), () => call('DELETE', `/me/files?path=${enc(path)}${count.n ? '&recursive=true' : ''}`));
  };

  const parts = dir ? dir.split('/') : [];
  const pct = usage && usage.hardBytes > 0 ? Math.min(100, (usage.usedBytes / usage.hardBytes) * 100) : 0;
  return (
    <main
      class={dragging ? 'page files dragging' : 'page files'}
      data-testid="my-files"
      onDragOver={(e) => {
        if (!e.dataTransfer?.types.includes('Files')) return;
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target) setDragging(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        void uploadFiles(Array.from(e.dataTransfer?.files ?? []));
      }}
    >
      <h1>{t('files.myFiles')}</h1>
      <p class="muted">{t('files.yourFolderOnTheFile')}</p>
      {usage && (
        <div class={usage.overSoft ? 'quota over' : 'quota'} data-testid="usage">
          <div class="quota-bar" role="meter" aria-label={t('files.storageUsed')} aria-valuemin={0} aria-valuemax={usage.hardBytes} aria-valuenow={usage.usedBytes}>
            <span class="quota-used" style={{ width: `${pct}%` }} />
            {usage.softBytes > 0 && usage.hardBytes > 0 && usage.softBytes < usage.hardBytes && <span class="quota-soft" style={{ left: `${(usage.softBytes / usage.hardBytes) * 100}%` }} title={t('files.softLimit', { size: size(usage.softBytes) })} />}
          </div>
          <span class={usage.overSoft ? 'banner bad' : 'muted'}>
            {t('files.usage', { used: size(usage.usedBytes), hard: size(usage.hardBytes), pct: formatNumber(Math.round(pct)) })}{usage.overSoft ? t('files.overSoft') : ''}
          </span>
        </div>
      )}
      {message && message.text && <p class={message.ok ? 'banner ok' : 'banner bad'} role="status" data-testid="files-message">{message.text}</p>}
      <nav class="crumbs" aria-label={t('files.folder')} data-testid="crumbs">
        {parts.length ? <a href={filesUrl('')} onClick={(e) => { e.preventDefault(); open(''); }}>{t('files.myFolder')}</a> : <span aria-current="page">{t('files.myFolder')}</span>}
        {parts.map((p, i) => (
          <span key={i}> / {i === parts.length - 1
            ? <span aria-current="page">{p}</span>
            : <a href={filesUrl(parts.slice(0, i + 1).join('/'))} onClick={(e) => { e.preventDefault(); open(parts.slice(0, i + 1).join('/')); }}>{p}</a>}</span>
        ))}
      </nav>
      <div class="file-actions">
        <label class="button">{t('files.upload')}{' '}<input ref={picker} type="file" multiple hidden disabled={!!upload} onChange={() => void uploadFiles(Array.from(picker.current?.files ?? []))} data-testid="upload" /></label>
        <button type="button" onClick={() => {
          const name = prompt(t('files.newFolderPrompt'));
          if (name) void act(t('files.madeFolder', { name }), () => call('POST', `/me/files/folder?path=${enc(join(dir, name))}`));
        }}>{t('files.newFolder')}</button>
      </div>
      {upload && (
        <div class="upload-progress" role="status" data-testid="upload-progress">
          <span>{upload.count > 1
            ? t('files.uploadingNth', { name: upload.name, nth: upload.done + 1, count: upload.count, loaded: size(upload.loaded), total: size(upload.total) })
            : t('files.uploadingOne', { name: upload.name, loaded: size(upload.loaded), total: size(upload.total) })}</span>
          <progress max={upload.total || 1} value={upload.loaded} />
          <button type="button" onClick={() => upload.cancel()}>{t('files.cancel')}</button>
        </div>
      )}
      <table class="grid">
        <thead><tr><th>{t('files.name')}</th><th>{t('files.size')}</th><th>{t('files.changed')}</th><th /></tr></thead>
        <tbody>
          {listing?.entries.length === 0 && <tr><td colSpan={4} class="muted">{t('files.thisFolderIsEmpty')}</td></tr>}
          {listing?.entries.map((e) => {
            const path = join(dir, e.name);
            const folder = isFolder(e);
            return (
              <tr key={e.name} data-testid="file-row" data-name={e.name} data-type={folder ? 'folder' : e.type}>
                <td>
                  {folder
                    ? <a class="entry folder" href={filesUrl(path)} onClick={(ev) => { ev.preventDefault(); open(path); }}><FolderIcon /> {e.name}</a>
                    : <a class="entry file" href={`/api/v1/me/files/content?path=${enc(path)}`} download={e.name}><FileIcon /> {e.name}</a>}
                </td>
                <td>{folder ? <span class="muted">{t('files.folder2')}</span> : e.type === 'file' ? size(e.sizeBytes) : ''}</td>
                <td>{formatDateTime(e.modifiedAt)}</td>
                <td>
                  <button type="button" onClick={() => {
                    const to = prompt(t('files.renamePrompt', { name: e.name }), e.name);
                    if (to && to !== e.name) void act(t('files.renamed', { name: to }), () => call('POST', `/me/files/rename?path=${enc(path)}&to=${enc(join(dir, to))}`));
                  }}>{t('files.rename')}</button>{' '}
                  <button type="button" onClick={() => void remove(e, path)}>{t('files.delete')}</button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </main>
  );
}
