// The console's shared table: free-text search, sortable headers, server-side pages, row
// selection with a bulk bar (one confirmation for the selected rows), all kept in the URL
// (?q=&sort=&order=&page=&<filters>) so a view can be shared or reloaded.
//
//   const url = useUrlQuery();
//   <Table url={url} columns={...} rowKey={(d) => d.id} filterKeys={['pool', 'state']}
//          load={(qs) => api.get<ListPage<Desktop>>(`/desktops?${qs}`)} bulk={[...]} />
//
// `load` gets the API query: q, sort, order, limit, offset and the filters present in the URL.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { navigate, useLocation } from '../router.tsx';
import { describeError } from '../api.ts';
import { ErrorLine, OutcomeBanner, usePoll, type Outcome } from '../ui.tsx';
import { t as tr, useT } from '../i18n/index.ts';

/** What a paged list endpoint answers. */
export interface ListPage<T> { items: T[]; total: number; nextCursor?: string }

export interface Column<T> {
  key: string;
  label: string;
  /** The server sorts by this key. */
  sortable?: boolean;
  render: (row: T) => ComponentChildren;
}

/** The result of a bulk action: per-id outcome (the server's bulk endpoints answer this). */
export interface BulkResult { results: { id: string; ok: boolean; error?: { code: string; message: string } }[] }

export interface BulkAction<T> {
  label: string;
  danger?: boolean;
  /** What the one confirmation says about these rows. */
  describe: (rows: T[]) => ComponentChildren;
  run: (rows: T[]) => Promise<BulkResult>;
  /** Past tense for the summary, e.g. "logged off". */
  done: string;
}

/** The URL's query string as state: read it, change parts of it (replacing the history entry). */
export function useUrlQuery() {
  const { query } = useLocation();
  return {
    query,
    get: (k: string) => query.get(k) ?? '',
    /** Sets (or, with '', removes) keys; anything but `page` going back to page 1. */
    set(patch: Record<string, string>) {
      const q = new URLSearchParams(location.search);
      for (const [k, v] of Object.entries(patch)) {
        if (v) q.set(k, v);
        else q.delete(k);
      }
      if (!('page' in patch)) q.delete('page');
      const s = q.toString();
      navigate(`${location.pathname}${s ? `?${s}` : ''}`, true);
    },
  };
}

export type UrlQuery = ReturnType<typeof useUrlQuery>;

export function Table<T>(props: {
  url: UrlQuery;
  columns: Column<T>[];
  rowKey: (row: T) => string;
  load: (apiQuery: string) => Promise<ListPage<T>>;
  /** URL keys passed through to the API as filters (e.g. pool, state). */
  filterKeys?: string[];
  /** Filter controls shown next to the search box (they read and set `url`). */
  filters?: ComponentChildren;
  bulk?: BulkAction<T>[];
  /** Per-row buttons, in a last column. */
  actions?: (row: T) => ComponentChildren;
  rowAttrs?: (row: T) => Record<string, string>;
  defaultSort?: string;
  defaultOrder?: 'asc' | 'desc';
  pageSize?: number;
  searchLabel?: string;
  empty?: string;
  /** Bumped by the page after its own actions to reload at once. */
  reloadKey?: number;
  testId?: string;
}) {
  const { url } = props;
  const t = useT();
  const size = props.pageSize ?? 50;
  const q = url.get('q');
  const sort = url.get('sort') || props.defaultSort || '';
  const order = (url.get('order') || props.defaultOrder || 'asc') as 'asc' | 'desc';
  const page = Math.max(1, Number(url.get('page')) || 1);
  const api = new URLSearchParams();
  if (q) api.set('q', q);
  if (sort) api.set('sort', sort);
  api.set('order', order);
  api.set('limit', String(size));
  api.set('offset', String((page - 1) * size));
  for (const k of props.filterKeys ?? []) if (url.get(k)) api.set(k, url.get(k));
  const apiQuery = api.toString();
  // Each answer remembers the page it is: until the next page's answer arrives, the pager names
  // the rows on screen, not the page asked for.
  const { data: shown, error, reload } = usePoll(() => props.load(apiQuery).then((d) => ({ d, page })), 10_000, [apiQuery], true);
  const data = shown?.d ?? null;
  const shownPage = shown?.page ?? page;
  useEffect(() => { if (props.reloadKey) reload(); }, [props.reloadKey]);

  // The search box keeps what is typed; the URL follows after a short pause.
  const [text, setText] = useState(q);
  const typing = useRef<ReturnType<typeof setTimeout>>();
  useEffect(() => { if (!document.activeElement?.hasAttribute('data-table-search')) setText(q); }, [q]);

  const [selected, setSelected] = useState<Set<string>>(new Set());
  useEffect(() => setSelected(new Set()), [apiQuery]);
  const rows = data?.items ?? [];
  const selRows = rows.filter((r) => selected.has(props.rowKey(r)));
  const allOn = rows.length > 0 && selRows.length === rows.length;

  const [pending, setPending] = useState<BulkAction<T> | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const total = data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / size));

  const header = (c: Column<T>) => {
    if (!c.sortable) return <th key={c.key} scope="col">{c.label}</th>;
    const on = sort === c.key;
    return (
      <th key={c.key} scope="col" aria-sort={on ? (order === 'asc' ? 'ascending' : 'descending') : 'none'}>
        <button type="button" class="sort" data-sort={c.key} onClick={() => url.set({ sort: c.key, order: on && order === 'asc' ? 'desc' : 'asc' })}>
          {c.label} {on ? (order === 'asc' ? '▲' : '▼') : ''}
        </button>
      </th>
    );
  };

  return (
    <div class="table" data-testid={props.testId}>
      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); clearTimeout(typing.current); url.set({ q: text.trim() }); }}>
        <label>{props.searchLabel ?? t('table.search')}
          <input type="search" name="q" data-table-search="" value={text} onInput={(e) => {
            const v = (e.target as HTMLInputElement).value;
            setText(v);
            clearTimeout(typing.current);
            typing.current = setTimeout(() => url.set({ q: v.trim() }), 300);
          }} />
        </label>
        {props.filters}
      </form>
      <ErrorLine error={error} />
      <OutcomeBanner outcome={outcome} />
      {props.bulk && selRows.length > 0 && (
        <div class="bulk-bar" role="toolbar" aria-label={t('table.selectedRows')}>
          <span data-testid="selected-count">{t('table.selected', { n: selRows.length })}</span>
          {props.bulk.map((b) => <button key={b.label} type="button" class={b.danger ? 'danger' : ''} onClick={() => setPending(b)}>{b.label}</button>)}
          <button type="button" onClick={() => setSelected(new Set())}>{t('table.clear')}</button>
        </div>
      )}
      <table class="grid">
        <thead>
          <tr>
            {props.bulk && <th scope="col"><input type="checkbox" aria-label={t('table.selectAll')} checked={allOn} onChange={() => setSelected(allOn ? new Set() : new Set(rows.map(props.rowKey)))} /></th>}
            {props.columns.map(header)}
            {props.actions && <th scope="col">{t('table.actions')}</th>}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => {
            const k = props.rowKey(r);
            return (
              <tr key={k} {...(props.rowAttrs?.(r) ?? {})}>
                {props.bulk && <td><input type="checkbox" aria-label={t('table.select', { id: k })} checked={selected.has(k)} onChange={() => { const s = new Set(selected); if (s.has(k)) s.delete(k); else s.add(k); setSelected(s); }} /></td>}
                {props.columns.map((c) => <td key={c.key}>{c.render(r)}</td>)}
                {props.actions && <td class="actions">{props.actions(r)}</td>}
              </tr>
            );
          })}
        </tbody>
      </table>
      {data && rows.length === 0 && <p class="muted">{props.empty ?? t('table.empty')}</p>}
      <nav class="pager" aria-label={t('table.pages')}>
        <button type="button" disabled={page <= 1} onClick={() => url.set({ page: page > 2 ? String(page - 1) : '' })}>{t('table.previous')}</button>
        <span data-testid="page-info">{total ? t('table.range', { from: (shownPage - 1) * size + 1, to: Math.min(total, shownPage * size), total }) : t('table.none')} · {t('table.page', { page: shownPage, pages })}</span>
        <button type="button" disabled={page >= pages} onClick={() => url.set({ page: String(page + 1) })}>{t('table.next')}</button>
      </nav>
      <BulkConfirm
        action={pending}
        rows={selRows}
        onClose={() => setPending(null)}
        onDone={(o) => { setOutcome(o); setSelected(new Set()); reload(); }}
      />
    </div>
  );
}

function BulkConfirm<T>(props: { action: BulkAction<T> | null; rows: T[]; onClose: () => void; onDone: (o: Outcome) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const t = useT();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.action && !d.open) d.showModal();
    else if (!props.action && d.open) d.close();
  }, [props.action]);
  const a = props.action;
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="bulk-title" onClose={props.onClose}>
      {a && (
        <form method="dialog" onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            const { results } = await a.run(props.rows);
            const bad = results.filter((r) => !r.ok);
            const good = results.length - bad.length;
            props.onDone({
              ok: bad.length === 0,
              text: tr('table.bulkDone', { action: a.label, good, total: results.length, done: a.done }) + (bad.length ? ` ${tr('table.bulkFailed', { list: bad.map((r) => `${r.id} (${r.error?.message ?? r.error?.code ?? 'error'})`).join('; ') })}` : ''),
              at: Date.now(),
            });
          } catch (err) {
            props.onDone({ ok: false, text: tr('ui.failed', { action: a.label, error: describeError(err) }), at: Date.now() });
          } finally {
            setBusy(false);
            props.onClose();
          }
        }}>
          <h2 id="bulk-title">{a.label}: {t('table.selected', { n: props.rows.length })}</h2>
          <div class="confirm-body">{a.describe(props.rows)}</div>
          <div class="buttons">
            <button type="button" onClick={props.onClose} disabled={busy}>{t('common.cancel')}</button>
            <button type="submit" class={a.danger ? 'danger' : 'primary'} disabled={busy}>{busy ? t('common.working') : `${a.label} ${props.rows.length}`}</button>
          </div>
        </form>
      )}
    </dialog>
  );
}

