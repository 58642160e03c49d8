// The helpdesk console (role helpdesk or admin): navigation and its pages.
import { api, enc } from '../api.ts';
import { Link, match, navigate } from '../router.tsx';
import type { Ticket } from '../types.ts';
import { Viewer } from '../viewer/Viewer.tsx';
import { LiveIndicator } from '../ui.tsx';
import { Overview } from './Overview.tsx';
import { Pools } from './Pools.tsx';
import { Desktops } from './Desktops.tsx';
import { Sessions } from './Sessions.tsx';
import { Hosts } from './Hosts.tsx';
import { Audit } from './Audit.tsx';
import { Logins } from './Logins.tsx';
import { Machines } from './Machines.tsx';
import { Authentication } from './Authentication.tsx';
import { Devices } from './Devices.tsx';

const PAGES: { path: string; label: string; page: () => preact.JSX.Element }[] = [
  { path: '/helpdesk', label: 'Overview', page: Overview },
  { path: '/helpdesk/pools', label: 'Pools', page: Pools },
  { path: '/helpdesk/desktops', label: 'Desktops', page: Desktops },
  { path: '/helpdesk/sessions', label: 'Sessions', page: Sessions },
  { path: '/helpdesk/hosts', label: 'Hosts', page: Hosts },
  { path: '/helpdesk/machines', label: 'Machines', page: Machines },
  { path: '/helpdesk/logins', label: 'Logins', page: Logins },
  { path: '/helpdesk/devices', label: 'Devices', page: Devices },
  { path: '/helpdesk/audit', label: 'Audit log', page: Audit },
  { path: '/helpdesk/authentication', label: 'Authentication', page: Authentication },
];

export function Console(props: { path: string }) {
  const shadow = match('/helpdesk/shadow/:id', props.path);
  if (shadow) {
    const id = shadow.id!;
    return (
      <Viewer
        title={`Shadowing session ${id}`}
        readOnly
        ticket={() => api.post<Ticket>(`/sessions/${enc(id)}/shadow`)}
        onDisconnect={() => navigate('/helpdesk/sessions')}
      />
    );
  }
  const current = PAGES.find((p) => p.path === props.path.replace(/\/+$/, '')) ?? PAGES[0]!;
  const Page = current.page;
  return (
    <div class="console">
      <nav class="side" aria-label="Helpdesk">
        {PAGES.map((p) => <Link key={p.path} href={p.path} class={p === current ? 'active' : ''}>{p.label}</Link>)}
        <LiveIndicator />
      </nav>
      <main class="page wide"><Page /></main>
    </div>
  );
}
