// "My desktops": the pools I am entitled to, with the state of my desktop in each.
import { api } from '../api.ts';
import { navigate } from '../router.tsx';
import type { MyPool } from '../types.ts';
import { ErrorLine, StateBadge, usePoll } from '../ui.tsx';

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
  const { data, error } = usePoll(() => api.get<{ pools: MyPool[] }>('/me/pools'), 3000);
  return (
    <main class="page">
      <h1>My desktops</h1>
      {props.notice && <p class="banner ok" role="status">{props.notice}</p>}
      <ErrorLine error={error} />
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
            {p.maintenance && <p class="banner bad">In maintenance: launching is paused.</p>}
            <button class="primary" type="button" disabled={!p.available} onClick={() => navigate(`/desktop/${encodeURIComponent(p.name)}`)}>
              {p.desktop?.session ? 'Reconnect' : 'Launch'}
            </button>
          </li>
        ))}
      </ul>
    </main>
  );
}
