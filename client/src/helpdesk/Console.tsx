// The helpdesk console (role helpdesk or admin): navigation and its pages.
import { useState } from 'preact/hooks';
import { Link, match } from '../router.tsx';
import { useT } from '../i18n/index.ts';
import { ShadowPage } from './Shadow.tsx';
import { SessionDetail } from './SessionDetail.tsx';
import { LiveIndicator } from '../ui.tsx';
import { Overview } from './Overview.tsx';
import { Pools } from './Pools.tsx';
import { Desktops } from './Desktops.tsx';
import { Users } from './Users.tsx';
import { Groups } from './Groups.tsx';
import { Images } from './Images.tsx';
import { Sessions } from './Sessions.tsx';
import { Hosts } from './Hosts.tsx';
import { Audit } from './Audit.tsx';
import { Logins } from './Logins.tsx';
import { Machines } from './Machines.tsx';
import { Authentication } from './Authentication.tsx';
import { Devices } from './Devices.tsx';
import { Recordings } from './Recordings.tsx';
import { Doctor } from './Doctor.tsx';

/** label: a catalogue key. */
export const PAGES: { path: string; label: string; page: () => preact.JSX.Element }[] = [
  { path: '/helpdesk', label: 'nav.overview', page: Overview },
  { path: '/helpdesk/pools', label: 'nav.pools', page: Pools },
  { path: '/helpdesk/desktops', label: 'nav.desktops', page: Desktops },
  { path: '/helpdesk/sessions', label: 'nav.sessions', page: Sessions },
  { path: '/helpdesk/users', label: 'nav.users', page: Users },
  { path: '/helpdesk/groups', label: 'nav.groups', page: Groups },
  { path: '/helpdesk/images', label: 'nav.images', page: Images },
  { path: '/helpdesk/hosts', label: 'nav.hosts', page: Hosts },
  { path: '/helpdesk/machines', label: 'nav.machines', page: Machines },
  { path: '/helpdesk/logins', label: 'nav.logins', page: Logins },
  { path: '/helpdesk/devices', label: 'nav.devices', page: Devices },
  { path: '/helpdesk/recordings', label: 'nav.recordings', page: Recordings },
  { path: '/helpdesk/audit', label: 'nav.audit', page: Audit },
  { path: '/helpdesk/doctor', label: 'nav.doctor', page: Doctor },
  { path: '/helpdesk/authentication', label: 'nav.authentication', page: Authentication },
];

export function Console(props: { path: string }) {
  const shadow = match('/helpdesk/shadow/:id', props.path);
  if (shadow) return <ShadowPage id={shadow.id!} />;
  const detail = match('/helpdesk/sessions/:id', props.path);
  const current = detail ? PAGES.find((p) => p.path === '/helpdesk/sessions')! : (PAGES.find((p) => p.path === props.path.replace(/\/+$/, '')) ?? PAGES[0]!);
  const Page = current.page;
  const t = useT();
  const [open, setOpen] = useState(false);
  return (
    <div class="console">
      <nav class={open ? 'side open' : 'side'} aria-label={t('nav.helpdesk')} onClick={(e) => (e.target as HTMLElement).closest('a') && setOpen(false)}>
        <button type="button" class="menu-button" aria-expanded={open} aria-controls="helpdesk-pages" onClick={() => setOpen(!open)}>☰ {t(current.label)}</button>
        <div class="side-links" id="helpdesk-pages">
          {PAGES.map((p) => <Link key={p.path} href={p.path} class={p === current ? 'active' : ''}>{t(p.label)}</Link>)}
        </div>
        <LiveIndicator />
      </nav>
      <main class="page wide" id="main" tabIndex={-1}>{detail ? <SessionDetail id={detail.id!} /> : <Page />}</main>
    </div>
  );
}
