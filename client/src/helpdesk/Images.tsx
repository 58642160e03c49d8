// Images: golden images with their versions; register an image, add a version (a directory
// with disk.qcow2 on the broker and hypervisor hosts), publish one, and each pool's rollout
// progress (desktops on the published version / all).
import { useState } from 'preact/hooks';
import { api, describeError, enc, fieldError } from '../api.ts';
import type { Pool } from '../types.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';
import { formatDateTime } from '../i18n/format.ts';

interface ImageVersion { version: number; path: string; format: string; checksum: string; createdAt: string; createdBy: string }
interface Image { name: string; displayName: string; current: number; versions: ImageVersion[] }

export function Images() {
  const images = usePoll(() => api.get<{ images: Image[] }>('/images'), 10_000, [], true);
  const pools = usePoll(() => api.get<{ pools: Pool[] }>('/pools'), 10_000, [], true);
  const { ask, dialog, banner } = useActions();
  const [v, setV] = useState({ name: '', displayName: '' });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  const reload = () => { images.reload(); pools.reload(); };
  const set = (k: keyof typeof v) => (e: Event) => { setV({ ...v, [k]: (e.target as HTMLInputElement).value }); setErrors({}); };
  return (
    <section>
      <h1>{t('images.images')}</h1>
      <ErrorLine error={images.error} />
      {banner}
      {note && <p class={note.ok ? 'banner ok' : 'banner bad'} role="status">{note.text}</p>}
      <form class="card pool-form" data-testid="image-form" onSubmit={async (e) => {
        e.preventDefault();
        try {
          await api.post('/images', { name: v.name.trim(), ...(v.displayName ? { displayName: v.displayName } : {}) });
          setNote({ ok: true, text: t('imagesM.imageVRegisteredAddA', { v: v.name.trim() }) });
          setV({ name: '', displayName: '' });
          reload();
        } catch (x) {
          const f = fieldError(x);
          if (f && f.field in v) setErrors({ [f.field]: f.message });
          else setNote({ ok: false, text: t('imagesM.registeringTheImageFailedX', { x: describeError(x) }) });
        }
      }}>
        <h2>{t('images.registerAnImage')}</h2>
        <label>{t('images.name')}{' '}<input name="name" required value={v.name} onInput={set('name')} />{errors.name && <span class="field-error" role="alert">{errors.name}</span>}</label>
        <label>{t('images.displayName')}{' '}<input name="displayName" value={v.displayName} onInput={set('displayName')} />{errors.displayName && <span class="field-error" role="alert">{errors.displayName}</span>}</label>
        <div class="buttons"><button class="primary">{t('images.register')}</button></div>
      </form>
      {images.data?.images.map((img) => {
        const using = (pools.data?.pools ?? []).filter((p) => p.image === img.name);
        return (
          <div class="card" key={img.name} data-image={img.name}>
            <h2>{img.displayName || img.name} <span class="muted">{img.name}</span></h2>
            <p>{img.current ? t('images.publishedVersion', { version: img.current }) : t('images.publishedNone')}</p>
            <table class="grid">
              <thead><tr><th>{t('images.version')}</th><th>{t('images.path')}</th><th>{t('images.added')}</th><th></th></tr></thead>
              <tbody>
                {[...img.versions].sort((a, b) => b.version - a.version).map((ver) => (
                  <tr key={ver.version} data-version={ver.version}>
                    <td>{ver.version}{ver.version === img.current && <span class="badge">{t('images.published2')}</span>}</td>
                    <td><code>{ver.path}</code></td>
                    <td>{t('images.addedBy', { when: formatDateTime(ver.createdAt), user: ver.createdBy })}</td>
                    <td>{ver.version !== img.current && <button type="button" onClick={() => ask({
                      title: t('imagesM.publishNameVersionVersion', { name: img.name, version: ver.version }), action: t('images.publish'), danger: true,
                      body: <p>{using.length ? t('images.publishBody', { pools: using.map((p) => p.name).join(', ') }) : t('images.publishBodyNoPool')}</p>,
                      run: async () => { await api.post(`/images/${enc(img.name)}/publish`, { version: ver.version }); reload(); return t('imagesM.nameVersionVersionPublishedRollout', { name: img.name, version: ver.version }); },
                    })}>{t('images.publish')}</button>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <button type="button" onClick={() => ask({
              title: t('imagesM.addAVersionOfName', { name: img.name }), action: t('images.addVersion'), body: <p>{t('images.theAbsolutePathOfA')}</p>,
              input: { label: t('images.path'), value: '' },
              run: async (path) => { await api.post(`/images/${enc(img.name)}/versions`, { path: path.trim(), publish: false }); reload(); return t('imagesM.versionAddedToName', { name: img.name }); },
            })}>{t('images.addVersion')}</button>
            <h3>{t('images.rolloutPerPool')}</h3>
            {using.length === 0 ? <p class="muted">{t('images.noPoolUsesThisImage')}</p> : (
              <table class="grid">
                <thead><tr><th>{t('images.pool')}</th><th>{t('images.upToDate')}</th></tr></thead>
                <tbody>{using.map((p) => {
                  const pct = p.rollout.total ? Math.round((100 * p.rollout.upToDate) / p.rollout.total) : 100;
                  return <tr key={p.name} data-rollout={p.name}><td>{p.name}</td><td><progress max={100} value={pct} /> {t('images.rollout', { upToDate: p.rollout.upToDate, total: p.rollout.total, target: p.rollout.target || '—' })}</td></tr>;
                })}</tbody>
              </table>
            )}
          </div>
        );
      })}
      {dialog}
    </section>
  );
}
