import { useState } from 'preact/hooks';
import { api, describeError, setCsrf, ApiError } from '../api.ts';
import type { User } from '../types.ts';

export function Login(props: { kiosk: boolean; notice?: string; onLogin: (u: User) => void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
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
            const r = await api.post<{ user: User; csrfToken: string }>('/auth/login', { username: String(f.get('username') ?? ''), password: String(f.get('password') ?? '') });
            setCsrf(r.csrfToken);
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
        <button class="primary" disabled={busy}>{busy ? 'Logging in…' : 'Log in'}</button>
        {error && <p class="banner bad" role="alert" data-testid="login-error">{error}</p>}
        {/* Single sign-on providers will add their buttons here. */}
        <div class="sso" hidden />
      </form>
    </main>
  );
}
