import { useEffect, useState } from 'preact/hooks';
import { api, describeError, setCsrf, ApiError } from '../api.ts';
import type { User } from '../types.ts';
import { Mfa, mfaChallengeFromUrl, type MfaChallenge } from './Mfa.tsx';
import { t as tr, useT } from '../i18n/index.ts';
import { LanguageSwitch } from '../i18n/LanguageSwitch.tsx';

/** One way to log in (GET /auth/methods): a password realm, or a single sign-on button. */
interface AuthMethod { name: string; label: string; kind: 'local' | 'ldap' | 'oidc'; domains: string[]; startUrl?: string }

/** What a single sign-on error code sent back to the login page (`/?sso_error=<code>`) means. */
const SSO_ERRORS: Record<string, string> = {
  directory_unavailable: 'login.ssoUnavailable',
  account_disabled: 'login.ssoDisabled',
};

function ssoErrorOf(search: string): string | null {
  const code = new URLSearchParams(search).get('sso_error');
  if (!code) return null;
  return tr(SSO_ERRORS[code] ?? 'login.ssoFailed');
}

export function Login(props: { kiosk: boolean; notice?: string; onLogin: (u: User) => void }) {
  const [error, setError] = useState<string | null>(() => ssoErrorOf(location.search));
  const [busy, setBusy] = useState(false);
  const [methods, setMethods] = useState<{ defaultRealm: string; methods: AuthMethod[] } | null>(null);
  const [realm, setRealm] = useState('');
  const t = useT();
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
    <main class={props.kiosk ? 'login kiosk' : 'login'} id="main">
      <LanguageSwitch class="lang login-lang" />
      <form
        class="card"
        onSubmit={async (e) => {
          e.preventDefault();
          // The form is kept now: after an await the event's currentTarget is null.
          const form = e.currentTarget;
          const f = new FormData(form);
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
            if (err instanceof ApiError && err.code === 'invalid_credentials') (form.elements.namedItem('password') as HTMLInputElement | null)?.select();
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>{t('app.title')}</h1>
        {props.notice && <p class="banner ok" role="status">{props.notice}</p>}
        <label>{t('login.username')} <input name="username" autocomplete={props.kiosk ? 'off' : 'username'} required autofocus /></label>
        <label>{t('login.password')} <input name="password" type="password" autocomplete="current-password" required /></label>
        {realms.length > 1 && (
          <label>{t('login.with')}
            <select name="realm" value={realm} onChange={(e) => setRealm((e.target as HTMLSelectElement).value)} data-testid="login-realm">
              {realms.map((m) => <option key={m.name} value={m.name}>{m.label}</option>)}
            </select>
          </label>
        )}
        <button type="submit" class="primary" disabled={busy}>{busy ? t('login.busy') : t('login.submit')}</button>
        {error && <p class="banner bad" role="alert" data-testid="login-error">{error}</p>}
        {sso.length > 0 && (
          <div class="sso">
            <p class="muted">{t('login.or')}</p>
            {sso.map((m) => <a key={m.name} class="button" href={m.startUrl} data-testid={`sso-${m.name}`}>{m.label}</a>)}
          </div>
        )}
      </form>
    </main>
  );
}
