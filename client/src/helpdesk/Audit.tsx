// The audit trail, newest first, with filters and paging.
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import type { AuditEntry } from '../types.ts';
import { ErrorLine, usePoll } from '../ui.tsx';

export function Audit() {
  const [f, setF] = useState({ actor: '', action: '', targetType: '', target: '', outcome: '' });
  const [before, setBefore] = useState<string[]>([]);
  const q = new URLSearchParams(Object.entries(f).filter(([, v]) => v));
  q.set('limit', '50');
  if (before.length) q.set('before', before.at(-1)!);
  const qs = q.toString();
  const { data, error } = usePoll(() => api.get<{ entries: AuditEntry[]; next?: string | null }>(`/audit?${qs}`), 10_000, [qs], true);
  const set = (k: keyof typeof f) => (e: Event) => { setBefore([]); setF({ ...f, [k]: (e.target as HTMLInputElement).value }); };
  return (
    <section>
      <h1>Audit log</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>Actor <input name="actor" value={f.actor} onInput={set('actor')} /></label>
        <label>Action <input name="action" value={f.action} onInput={set('action')} placeholder="session.logoff" /></label>
        <label>Target type <input name="targetType" value={f.targetType} onInput={set('targetType')} /></label>
        <label>Target <input name="target" value={f.target} onInput={set('target')} /></label>
        <label>Outcome <select name="outcome" value={f.outcome} onChange={set('outcome')}><option value="">any</option><option>ok</option><option>denied</option><option>failed</option></select></label>
      </form>
      <ErrorLine error={error} />
      <table class="grid">
        <thead><tr><th>When</th><th>Actor</th><th>Action</th><th>Target</th><th>Outcome</th><th>From</th><th>Details</th></tr></thead>
        <tbody>
          {data?.entries.map((e) => (
            <tr key={e.id}>
              <td>{new Date(e.at).toLocaleString()}</td>
              <td>{e.actor} <span class="muted">({e.role})</span></td>
              <td>{e.action}</td>
              <td>{e.targetType}:{e.target}</td>
              <td class={e.outcome === 'ok' ? '' : 'bad'}>{e.outcome}</td>
              <td>{e.address}</td>
              <td class="small"><code>{JSON.stringify(e.details)}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="buttons">
        <button type="button" disabled={!before.length} onClick={() => setBefore(before.slice(0, -1))}>Newer</button>
        <button type="button" disabled={!data?.next} onClick={() => data?.next && setBefore([...before, data.next])}>Older</button>
      </div>
    </section>
  );
}
