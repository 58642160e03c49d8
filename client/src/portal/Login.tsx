import { useEffect, useState } from 'preact/hooks';
import { api, describeError, setCsrf, ApiError } from '../api.ts';
import type { User } from '../types.ts';
import { Mfa, mfaChallengeFromUrl, type MfaChallenge } from './Mfa.tsx';

/** One way to log in (GET /auth/methods): a password realm, or a single sign-on button. */
interface AuthMethod { name: string; label: string; kind: 'local' | 'ldap' | 'oidc'; domains: string[]; startUrl?: string }

/** What a single sign-on error code sent back to the login page (`/?sso_error=<code>`) means. */
const SSO_ERRORS: Record<string, string> = {
  directory_unavailable: 'The sign-in service cannot be reached; try again shortly.',
  account_disabled: 'This account is disabled; ask the helpdesk.',
};

function ssoErrorOf(search: string): string | null {
  const code = new URLSearchParams(search).get('sso_error');
  if (!code) return null;
  return SSO_ERRORS[code] ?? 'Single sign-on did not complete; try again or use another way to log in.';
}

export function Login(props: { kiosk: boolean; notice?: string; onLogin: (u: User) => void }) {
  const [error, setError] = useState<string | null>(() => ssoErrorOf(location.search));
  const [busy, setBusy] = useState(false);
  const [methods, setMethods] = useState<{ defaultRealm: string; methods: AuthMethod[] } | null>(null);
  const [realm, setRealm] = useState('');
  useEffect(() => {
    api.get<{ defaultRealm: string; methods: AuthMethod[] }>('/auth/methods').then((m) => {
      setMethods(m);
      setRealm(m.defaultRealm);
    }, () => undefined);
  }, []);
  const realms = methods?.methods.filter((m) => m.kind !== 'oidc') ?? [];
  const sso = methods?.methods.filter((m) => m.kind === 'oidc' && m.startUrl) ?? [];
  // The password step passed and a second factor is asked for (server/auth/mfa).
  const [mfa, setMfa] = useState<MfaChallenge | null>(mfaChallengeFromUrl);
  if (mfa) return <Mfa challenge={mfa} kiosk={props.kiosk} onLogin={props.onLogin} onCancel={(notice) => { setMfa(null); setError(notice ?? null); }} />;
  return (
    <main class={props.kiosk ? 'login kiosk' : 'login'}>
      <form
        class="card"
        onSubmit={async (e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          setBusy(true);
          setError(null);
          if (props.kiosk && !document.fullscreenElement) void document.documentElement.requestFullscreen?.().catch(() => undefined);
          try {
            const r = await api.post<{ status: 'ok'; user: User; csrfToken: string } | ({ status: 'mfa_required'; csrfToken: string } & MfaChallenge)>('/auth/login', {
              username: String(f.get('username') ?? ''),
              password: String(f.get('password') ?? ''),
              // user@domain finds its directory by itself; otherwise the realm chosen here.
              ...(realms.length > 1 && realm && !String(f.get('username') ?? '').includes('@') ? { realm } : {}),
            });
            setCsrf(r.csrfToken);
            if (r.status === 'mfa_required') return setMfa({ methods: r.methods, enrol: r.enrol });
            props.onLogin(r.user);
          } catch (err) {
            setError(describeError(err));
            if (err instanceof ApiError && err.code === 'invalid_credentials') (e.currentTarget.elements.namedItem('password') as HTMLInputElement | null)?.select();
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Virtual desktops</h1>
        {props.notice && <p class="banner ok" role="status">{props.notice}</p>}
        <label>User name <input name="username" autocomplete="username" required autofocus /></label>
        <label>Password <input name="password" type="password" autocomplete="current-password" required /></label>
        {realms.length > 1 && (
          <label>Log in with
            <select name="realm" value={realm} onChange={(e) => setRealm((e.target as HTMLSelectElement).value)} data-testid="login-realm">
              {realms.map((m) => <option key={m.name} value={m.name}>{m.label}</option>)}
            </select>
          </label>
        )}
        <button class="primary" disabled={busy}>{busy ? 'Logging in…' : 'Log in'}</button>
        {error && <p class="banner bad" role="alert" data-testid="login-error">{error}</p>}
        {sso.length > 0 && (
          <div class="sso">
            <p class="muted">or</p>
            {sso.map((m) => <a key={m.name} class="button" href={m.startUrl} data-testid={`sso-${m.name}`}>{m.label}</a>)}
          </div>
        )}
      </form>
    </main>
  );
}
