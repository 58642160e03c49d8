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
import './styles.css';

const isStaff = (u: User) => u.role === 'helpdesk' || u.role === 'admin';

function App() {
  const { path } = useLocation();
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const [notice, setNotice] = useState<string>('');
  const [kiosk] = useState(kioskMode);
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
      setNotice(`The display could not start: ${describeError(e)}`);
      retry = setTimeout(start, 30_000);
    });
    start();
    return () => clearTimeout(retry);
  }, [user]);
  useEffect(() => (user && deviceStatus().device?.mode === 'shared-lab' ? idleLogoff(deviceStatus().device!.idleSeconds, () => void logoffMySessions().then(() => logout('You were logged off after a while without input.'))) : undefined), [user]);

  useEffect(() => {
    api.get<Me>('/me').then(
      (me) => {
        setCsrf(me.csrfToken);
        setUser(me.user);
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
    if (path.startsWith('/helpdesk') || path.startsWith('/desktop/')) return navigate(path + location.search, true);
    navigate('/', true);
  };

  if (path === '/enroll' || mustEnrol()) return <Enroll />;
  if (user === undefined) return <main class="page center"><p class="spinner">Loading…</p></main>;
  if (user === null && roomDisplay) return <main class="page center"><p class="spinner" data-testid="display-starting">{notice || 'Starting the display…'}</p></main>;
  if (user === null) return <Login kiosk={kiosk} notice={notice} onLogin={(u) => void afterLogin(u)} />;

  const launch = match('/desktop/:pool', path);
  if (launch) {
    return (
      <Launch
        key={launch.pool}
        pool={launch.pool!}
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
      <main class="page"><p class="banner bad" role="alert" data-testid="forbidden">The helpdesk console is for helpdesk staff. Your account ({user.id}) cannot open it.</p><Link href="/">Back to my desktops</Link></main>
    );
  } else if (path === '/files') {
    body = <MyFiles />;
  } else if (path === '/security') {
    body = <Security />;
  } else {
    body = <MyDesktops notice={notice || undefined} />;
  }
  return (
    <div class={kiosk ? 'shell kiosk' : 'shell'}>
      <header class="top">
        <Link href="/" class="brand">Virtual desktops</Link>
        <nav>
          <Link href="/">My desktops</Link>
          <Link href="/files">My files</Link>
          <Link href="/security">Sign-in security</Link>
          {isStaff(user) && <Link href="/helpdesk">Helpdesk</Link>}
        </nav>
        <span class="who">{user.displayName} <span class="muted">({user.role})</span></span>
        <button type="button" onClick={() => void logout()}>Log out</button>
      </header>
      {body}
    </div>
  );
}

// What this browser is as a device decides kiosk mode, so it is known before the first render.
void loadDevice().then(() => render(<App />, document.getElementById('app')!));
