// The web client: user portal (login, my desktops, launch + viewer, kiosk mode) and the
// helpdesk console. One bundle, routed by path; the broker serves index.html for client routes.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, describeError, setCsrf } from './api.ts';
import { Link, match, navigate, useLocation } from './router.tsx';
import type { Me, MyPool, User } from './types.ts';
import { deviceStatus, idleLogoff, kioskMode, kioskPool, loadDevice, logoffMySessions, mustEnrol, startRoomDisplay, watchDevice, wipeBrowserState } from './kiosk.ts';
import { Enroll } from './portal/Enroll.tsx';
import { Login } from './portal/Login.tsx';
import { MyDesktops } from './portal/Desktops.tsx';
import { MyFiles } from './portal/Files.tsx';
import { Security } from './portal/Security.tsx';
import { Launch } from './portal/Launch.tsx';
import { Console } from './helpdesk/Console.tsx';
import { t, useT } from './i18n/index.ts';
import { LanguageSwitch } from './i18n/LanguageSwitch.tsx';
import './styles.css';

const isStaff = (u: User) => u.role === 'helpdesk' || u.role === 'admin';
const APP_TITLE = () => t('app.title');
/** A kiosk's notice after logout goes away by itself (the next person should not read it). */
const KIOSK_NOTICE_MS = 20_000;

/** Forgets what the last user left in this tab: title, per-session storage (dismissed messages...). */
function clearUserState(): void {
  document.title = APP_TITLE();
  try {
    for (const k of Object.keys(sessionStorage)) if (k.startsWith('vdi.')) sessionStorage.removeItem(k);
  } catch {
    // storage disabled: nothing kept there
  }
}

/** Staff (helpdesk, admin) without desktops of their own land on the console. */
async function landingFor(u: User): Promise<string> {
  if (!isStaff(u)) return '/';
  const { pools } = await api.get<{ pools: MyPool[] }>('/me/pools').catch(() => ({ pools: [{}] as MyPool[] }));
  return pools.length === 0 ? '/helpdesk' : '/';
}

function App() {
  const { path } = useLocation();
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const [notice, setNotice] = useState<string>('');
  const [kiosk] = useState(kioskMode);
  const tt = useT();
  const [menu, setMenu] = useState(false);
  useEffect(() => setMenu(false), [path]);
  // Enrolled devices (kiosk.ts): a revoked one goes back to enrolment; a shared lab terminal logs off when idle.
  useEffect(() => (kiosk ? watchDevice(() => location.replace('/enroll')) : undefined), []);
  const roomDisplay = deviceStatus().device?.mode === 'room-display';
  useEffect(() => {
    if (user !== null || !roomDisplay) return;
    // A room display has no login: it starts as its device principal, and again 30 s after a failure.
    let retry: ReturnType<typeof setTimeout> | undefined;
    const start = () => void startRoomDisplay<User>().then((r) => {
      setCsrf(r.csrfToken);
      setUser(r.user);
      navigate(`/desktop/${encodeURIComponent(r.pool)}`, true);
    }, (e) => {
      setNotice(t('app.displayFailed', { error: describeError(e) }));
      retry = setTimeout(start, 30_000);
    });
    start();
    return () => clearTimeout(retry);
  }, [user]);
  useEffect(() => (user && deviceStatus().device?.mode === 'shared-lab' ? idleLogoff(deviceStatus().device!.idleSeconds, () => void logoffMySessions().then(() => logout(t('app.idleLoggedOff')))) : undefined), [user]);

  useEffect(() => {
    api.get<Me>('/me').then(
      (me) => {
        setCsrf(me.csrfToken);
        setUser(me.user);
        if (location.pathname === '/') void landingFor(me.user).then((to) => to !== '/' && location.pathname === '/' && navigate(to, true));
      },
      (e) => {
        setUser(null);
        if (e instanceof ApiError && e.status !== 401) setNotice('');
      },
    );
  }, []);

  const logout = async (message = '') => {
    const out = await api.post<{ redirect?: string } | null>('/auth/logout').catch(() => null);
    setCsrf('');
    clearUserState();
    if (deviceStatus().device?.mode === 'shared-lab') await wipeBrowserState();
    // After a single sign-on login, the identity provider ends its session too (RP-initiated logout).
    if (out?.redirect) return void location.assign(out.redirect);
    setUser(null);
    setNotice(message);
    navigate('/', true);
  };

  const afterLogin = async (u: User) => {
    setUser(u);
    setNotice('');
    if (kiosk) {
      // Kiosk: straight into the location's default pool, or the user's only one.
      const { pools } = await api.get<{ pools: MyPool[] }>('/me/pools').catch(() => ({ pools: [] as MyPool[] }));
      const pool = kioskPool(pools);
      if (pool) return navigate(`/desktop/${encodeURIComponent(pool)}`, true);
    }
    if (path.startsWith('/helpdesk') || path.startsWith('/desktop/') || path === '/files' || path === '/security') return navigate(path + location.search, true);
    navigate(await landingFor(u), true);
  };

  // A kiosk's notice (after a logout) is cleared after a while: the next person starts clean.
  useEffect(() => {
    if (!kiosk || !notice || user) return;
    const t = setTimeout(() => setNotice(''), KIOSK_NOTICE_MS);
    return () => clearTimeout(t);
  }, [kiosk, notice, user]);

  if (path === '/enroll' || mustEnrol()) return <Enroll />;
  if (user === undefined) return <main class="page center" id="main"><p class="spinner" role="status">{tt('common.loading')}</p></main>;
  if (user === null && roomDisplay) return <main class="page center" id="main"><p class="spinner" role="status" data-testid="display-starting">{notice || tt('app.displayStarting')}</p></main>;
  if (user === null) return <Login kiosk={kiosk} notice={notice} onLogin={(u) => void afterLogin(u)} />;

  const launch = match('/desktop/:pool', path);
  if (launch) {
    return (
      <Launch
        key={launch.pool}
        pool={launch.pool!}
        kiosk={kiosk}
        onLeave={(text) => {
          if (kiosk) return void logout(text);
          setNotice(text);
          navigate('/');
        }}
      />
    );
  }

  let body: preact.JSX.Element;
  if (path.startsWith('/helpdesk')) {
    body = isStaff(user) ? (
      <Console path={path} />
    ) : (
      <main class="page" id="main" tabIndex={-1}><p class="banner bad" role="alert" data-testid="forbidden">{tt('app.forbidden', { id: user.id })}</p><Link href="/">{tt('app.backToDesktops')}</Link></main>
    );
  } else if (path === '/files') {
    body = <MyFiles />;
  } else if (path === '/security') {
    body = <Security />;
  } else {
    body = <MyDesktops notice={notice || undefined} staff={isStaff(user)} />;
  }
  return (
    <div class={kiosk ? 'shell kiosk' : 'shell'}>
      <a class="skip-link" href="#main" onClick={(e) => { e.preventDefault(); const m = document.getElementById('main') ?? document.querySelector('main'); if (m) { if (!m.hasAttribute('tabindex')) m.setAttribute('tabindex', '-1'); m.focus(); } }}>{tt('app.skip')}</a>
      <header class={menu ? 'top open' : 'top'}>
        <Link href="/" class="brand">{tt('app.title')}</Link>
        <button type="button" class="menu-button" aria-expanded={menu} aria-controls="top-nav" aria-label={tt('nav.menu')} onClick={() => setMenu(!menu)}>☰</button>
        <nav id="top-nav" aria-label={tt('app.navLabel')}>
          <Link href="/">{tt('app.myDesktops')}</Link>
          <Link href="/files">{tt('app.myFiles')}</Link>
          <Link href="/security">{tt('app.security')}</Link>
          {isStaff(user) && <Link href="/helpdesk">{tt('nav.helpdesk')}</Link>}
        </nav>
        <span class="who">{user.displayName} <span class="muted">({tt(`role.${user.role}`, { defaultValue: user.role })})</span></span>
        <LanguageSwitch />
        <button type="button" onClick={() => void logout()}>{tt('app.logout')}</button>
      </header>
      {body}
    </div>
  );
}

// What this browser is as a device decides kiosk mode, so it is known before the first render.
void loadDevice().then(() => render(<App />, document.getElementById('app')!));
