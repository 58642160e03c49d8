// "My files": the user's folder on the file share, through /api/v1/me/files. Works without a
// desktop. Uploads send the file's raw bytes (the API streams them to disk and checks the quota).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, call, csrfToken, describeError, enc } from '../api.ts';

interface Entry { name: string; type: 'file' | 'dir' | 'link' | 'other'; sizeBytes: number; modifiedAt: string }
interface Listing { path: string; entries: Entry[] }
interface Usage { usedBytes: number; softBytes: number; hardBytes: number; overSoft?: boolean }

const join = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function MyFiles() {
  const [dir, setDir] = useState('');
  const [listing, setListing] = useState<Listing | null>(null);
  const [usage, setUsage] = useState<Usage | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const upload = useRef<HTMLInputElement>(null);

  const load = async (path = dir) => {
    try {
      const [l, u] = await Promise.all([api.get<Listing>(`/me/files?path=${enc(path)}`), api.get<{ usage?: Usage } & Usage>('/me/files/usage')]);
      setListing(l);
      setUsage((u.usage ?? u) as Usage);
    } catch (e) {
      setMessage({ ok: false, text: describeError(e) });
    }
  };
  useEffect(() => void load(dir), [dir]);

  const act = async (what: string, op: () => Promise<unknown>) => {
    try {
      await op();
      setMessage({ ok: true, text: what });
    } catch (e) {
      setMessage({ ok: false, text: describeError(e) });
    }
    await load();
  };

  const onUpload = async () => {
    const files = upload.current?.files;
    if (!files?.length) return;
    for (const f of Array.from(files)) {
      await act(`Uploaded ${f.name}.`, async () => {
        const res = await fetch(`/api/v1/me/files/content?path=${enc(join(dir, f.name))}&overwrite=true`, {
          method: 'PUT',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/octet-stream', 'x-csrf-token': csrfToken() },
          body: f,
        });
        if (!res.ok) {
          const e = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
          throw new Error(e?.error?.message ?? `Upload failed (HTTP ${res.status}).`);
        }
      });
    }
    if (upload.current) upload.current.value = '';
  };

  const parts = dir ? dir.split('/') : [];
  return (
    <main class="page" data-testid="my-files">
      <h1>My files</h1>
      <p class="muted">Your folder on the file share. Every desktop you get shows it as your home folder; files you keep here survive a desktop being refreshed.</p>
      {usage && (
        <p data-testid="usage" class={usage.overSoft ? 'banner bad' : 'muted'}>
          {size(usage.usedBytes)} used of {size(usage.hardBytes)}{usage.overSoft ? ' — over your soft limit: please tidy up.' : ''}
        </p>
      )}
      {message && <p class={message.ok ? 'banner ok' : 'banner bad'} role="status">{message.text}</p>}
      <nav class="crumbs" aria-label="Folder">
        <a href="#" onClick={(e) => { e.preventDefault(); setDir(''); }}>My folder</a>
        {parts.map((p, i) => (
          <span key={i}> / <a href="#" onClick={(e) => { e.preventDefault(); setDir(parts.slice(0, i + 1).join('/')); }}>{p}</a></span>
        ))}
      </nav>
      <div class="file-actions">
        <label class="button">Upload… <input ref={upload} type="file" multiple hidden onChange={() => void onUpload()} data-testid="upload" /></label>
        <button type="button" onClick={() => {
          const name = prompt('Name of the new folder');
          if (name) void act(`Made folder ${name}.`, () => call('POST', `/me/files/folder?path=${enc(join(dir, name))}`));
        }}>New folder</button>
      </div>
      <table class="grid">
        <thead><tr><th>Name</th><th>Size</th><th>Changed</th><th /></tr></thead>
        <tbody>
          {listing?.entries.length === 0 && <tr><td colSpan={4} class="muted">This folder is empty.</td></tr>}
          {listing?.entries.map((e) => {
            const path = join(dir, e.name);
            return (
              <tr key={e.name} data-testid="file-row">
                <td>
                  {e.type === 'dir'
                    ? <a href="#" onClick={(ev) => { ev.preventDefault(); setDir(path); }}>{e.name}/</a>
                    : <a href={`/api/v1/me/files/content?path=${enc(path)}`} download={e.name}>{e.name}</a>}
                </td>
                <td>{e.type === 'file' ? size(e.sizeBytes) : ''}</td>
                <td>{new Date(e.modifiedAt).toLocaleString()}</td>
                <td>
                  <button type="button" onClick={() => {
                    const to = prompt(`Rename ${e.name} to`, e.name);
                    if (to && to !== e.name) void act(`Renamed to ${to}.`, () => call('POST', `/me/files/rename?path=${enc(path)}&to=${enc(join(dir, to))}`));
                  }}>Rename</button>{' '}
                  <button type="button" onClick={() => {
                    if (confirm(`Delete ${e.name}${e.type === 'dir' ? ' and everything in it' : ''}?`)) void act(`Deleted ${e.name}.`, () => call('DELETE', `/me/files?path=${enc(path)}${e.type === 'dir' ? '&recursive=true' : ''}`));
                  }}>Delete</button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </main>
  );
}
