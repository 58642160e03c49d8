// "My desktops": the pools I am entitled to, with the state of my desktop in each.
import { api, enc } from '../api.ts';
import { navigate } from '../router.tsx';
import type { MyPool } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';

const STATE_TEXT: Record<string, string> = {
  provisioning: 'being prepared',
  ready: 'ready',
  assigned: 'yours, not running a session',
  in_use: 'running',
  refreshing: 'being refreshed',
  deleting: 'being removed',
  error: 'has a problem (the helpdesk has been told)',
};

export function MyDesktops(props: { notice?: string | undefined }) {
  const { data, error, reload } = usePoll(() => api.get<{ pools: MyPool[] }>('/me/pools'), 3000);
  const { ask, dialog, banner } = useActions();
  return (
    <main class="page">
      <h1>My desktops</h1>
      {props.notice && <p class="banner ok" role="status">{props.notice}</p>}
      <ErrorLine error={error} />
      {banner}
      {data && data.pools.length === 0 && <p>You are not entitled to any desktop yet. Ask the helpdesk.</p>}
      <ul class="tiles">
        {data?.pools.map((p) => (
          <li key={p.name} class="tile" data-pool={p.name}>
            <h2>{p.displayName}</h2>
            {p.description && <p class="muted">{p.description}</p>}
            <p>
              {p.desktop ? (
                <>
                  <span class="desktop-name">{p.desktop.name}</span> <StateBadge state={p.desktop.state} /> <span class="muted">{STATE_TEXT[p.desktop.state] ?? ''}</span>
                  {p.desktop.session && <span class="muted"> · session open</span>}
                </>
              ) : (
                <span class="muted">{p.assignment === 'dedicated' ? 'You will get your own desktop.' : 'A desktop is taken from the pool when you launch.'}</span>
              )}
            </p>
            <p class="muted small">{p.persistence === 'persistent' ? 'Persistent: your desktop keeps its disk.' : 'Non-persistent: refreshed at log off; keep files in your network folder.'}</p>
            {p.maintenance && (
              <p class="banner bad" data-testid="maintenance">
                {p.available ? 'In maintenance: new sessions are paused. Your running desktop stays yours: reconnect or log off as usual.' : 'In maintenance: launching is paused.'}
              </p>
            )}
            <button class="primary" type="button" disabled={!p.available} onClick={() => navigate(`/desktop/${encodeURIComponent(p.name)}`)}>
              {p.desktop?.session ? 'Reconnect' : 'Launch'}
            </button>
            {p.desktop?.session && (
              <button type="button" class="danger" onClick={() => ask({
                title: `Log off ${p.desktop!.name}?`, action: 'Log off', danger: true,
                body: <p>Your apps on it are closed and unsaved work is lost. {p.persistence === 'persistent' ? 'The desktop keeps its disk.' : 'The desktop is refreshed to a clean state; files in your network folder are kept.'} To keep your apps running, just close the viewer (Disconnect).</p>,
                run: async () => { await api.post(`/me/sessions/${enc(p.desktop!.session!)}/logoff`); reload(); return `Logged off from ${p.desktop!.name}.`; },
              })}>Log off</button>
            )}
          </li>
        ))}
      </ul>
      {dialog}
    </main>
  );
}
