// The audit trail, newest first: free-text search and filters kept in the URL (shareable:
// ?q=&actor=&action=&targetType=&target=&outcome=&before=), paged by the server (`before` = the
// last entry of the previous page; the trail is a stream, so it is always newest first).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.ts';
import type { AuditEntry } from '../types.ts';
import { ErrorLine, usePoll } from '../ui.tsx';
import { useUrlQuery } from './Table.tsx';
import { t } from '../i18n/index.ts';
import { formatDateTime } from '../i18n/format.ts';

const KEYS = ['q', 'actor', 'action', 'targetType', 'target', 'outcome'] as const;
const OUTCOMES = { ok: 'audit.ok', denied: 'audit.denied', failed: 'audit.failed' } as const;

export function Audit() {
  const url = useUrlQuery();
  // Older pages: the stack of `before` ids, the last in the URL.
  const [stack, setStack] = useState<string[]>([]);
  const before = url.get('before');
  const q = new URLSearchParams();
  for (const k of KEYS) if (url.get(k)) q.set(k, url.get(k));
  q.set('limit', '50');
  if (before) q.set('before', before);
  const qs = q.toString();
  const { data, error } = usePoll(() => api.get<{ entries: AuditEntry[]; next?: string | null }>(`/audit?${qs}`), 10_000, [qs], true);
  // Text inputs keep what is typed; the URL follows after a short pause.
  const [text, setText] = useState<Record<string, string>>(() => Object.fromEntries(KEYS.map((k) => [k, url.get(k)])));
  const timer = useRef<ReturnType<typeof setTimeout>>();
  useEffect(() => () => clearTimeout(timer.current), []);
  const set = (k: (typeof KEYS)[number]) => (e: Event) => {
    const v = (e.target as HTMLInputElement).value;
    setText((t) => ({ ...t, [k]: v }));
    clearTimeout(timer.current);
    const go = () => { setStack([]); url.set({ [k]: v.trim(), before: '' }); };
    if (k === 'outcome') go();
    else timer.current = setTimeout(go, 300);
  };
  const input = (k: (typeof KEYS)[number], label: string, extra: Record<string, string> = {}) => (
    <label>{label} <input name={k} value={text[k] ?? ''} onInput={set(k)} {...extra} /></label>
  );
  return (
    <section>
      <h1>{t('audit.auditLog')}</h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        {input('q', t('audit.search'), { type: 'search' })}
        {input('actor', t('audit.actor'))}
        {input('action', t('audit.action'), { placeholder: 'session.logoff' })}
        {input('targetType', t('audit.targetType'))}
        {input('target', t('audit.target'))}
        <label>{t('audit.outcome')}{' '}<select name="outcome" value={text.outcome ?? ''} onChange={set('outcome')}><option value="">{t('audit.any')}</option><option value="ok">{t('audit.ok')}</option><option value="denied">{t('audit.denied')}</option><option value="failed">{t('audit.failed')}</option></select></label>
      </form>
      <ErrorLine error={error} />
      <table class="grid">
        <thead><tr><th>{t('audit.when')}</th><th>{t('audit.actor')}</th><th>{t('audit.action')}</th><th>{t('audit.target')}</th><th>{t('audit.outcome')}</th><th>{t('audit.from')}</th><th>{t('audit.details')}</th></tr></thead>
        <tbody>
          {data?.entries.map((e) => (
            <tr key={e.id} data-audit={e.action}>
              <td>{formatDateTime(e.at)}</td>
              <td>{e.actor} <span class="muted">({e.role})</span></td>
              <td>{e.action}</td>
              <td>{e.targetType}:{e.target}</td>
              <td class={e.outcome === 'ok' ? '' : 'bad'}>{t(OUTCOMES[e.outcome])}</td>
              <td>{e.address}</td>
              <td class="small"><code>{JSON.stringify(e.details)}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.entries.length === 0 && <p class="muted">{t('audit.noEntriesMatch')}</p>}
      <nav class="pager" aria-label={t('audit.pages')}>
        <button type="button" disabled={!before} onClick={() => { const s = stack.slice(0, -1); setStack(s); url.set({ before: s.at(-1) ?? '', page: '' }); }}>{t('audit.newer')}</button>
        <button type="button" disabled={!data?.next} onClick={() => { if (!data?.next) return; setStack([...stack, data.next]); url.set({ before: data.next, page: '' }); }}>{t('audit.older')}</button>
      </nav>
    </section>
  );
}
