// The web client: user portal (login, my desktops, launch + viewer, kiosk mode) and the
// helpdesk console. One bundle, routed by path; the broker serves index.html for client routes.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, setCsrf } from './api.ts';
import { Link, match, navigate, useLocation } from './router.tsx';
import type { Me, MyPool, User } from './types.ts';
import { kioskMode } from './kiosk.ts';
import { Login } from './portal/Login.tsx';
import { MyDesktops } from './portal/Desktops.tsx';
import { MyFiles } from './portal/Files.tsx';
import { Launch } from './portal/Launch.tsx';
import { Console } from './helpdesk/Console.tsx';
import './styles.css';

const isStaff = (u: User) => u.role === 'helpdesk' || u.role === 'admin';

function App() {
  const { path } = useLocation();
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const [notice, setNotice] = useState<string>('');
  const [kiosk] = useState(kioskMode);

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
    await api.post('/auth/logout').catch(() => undefined);
    setCsrf('');
    setUser(null);
    setNotice(message);
    navigate('/', true);
  };

  const afterLogin = async (u: User) => {
    setUser(u);
    setNotice('');
    if (kiosk) {
      // Kiosk: straight into the user's only desktop.
      const { pools } = await api.get<{ pools: MyPool[] }>('/me/pools').catch(() => ({ pools: [] as MyPool[] }));
      const usable = pools.filter((p) => p.available);
      if (usable.length === 1) return navigate(`/desktop/${encodeURIComponent(usable[0]!.name)}`, true);
    }
    if (path.startsWith('/helpdesk') || path.startsWith('/desktop/')) return navigate(path + location.search, true);
    navigate('/', true);
  };

  if (user === undefined) return <main class="page center"><p class="spinner">Loading…</p></main>;
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
          {isStaff(user) && <Link href="/helpdesk">Helpdesk</Link>}
        </nav>
        <span class="who">{user.displayName} <span class="muted">({user.role})</span></span>
        <button type="button" onClick={() => void logout()}>Log out</button>
      </header>
      {body}
    </div>
  );
}

render(<App />, document.getElementById('app')!);
