// Authentication (admin): the configured authenticators, read-only (they are set in config/,
// docs/authentication.md), with a "Test connection" that checks a directory answers (audited).
import { api, enc } from '../api.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';

interface AuthenticatorInfo {
  name: string;
  label: string;
  kind: 'local' | 'ldap' | 'oidc';
  domains: string[];
  groupCacheSeconds: number;
  default: boolean;
  testable: boolean;
  settings: Record<string, unknown>;
}

interface TestResult { ok: boolean; server?: string; milliseconds: number; message: string }

const show = (v: unknown) => (v === null || v === undefined || v === '' ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

export function Authentication() {
  const { data, error } = usePoll(() => api.get<{ defaultRealm: string; authenticators: AuthenticatorInfo[] }>('/auth/authenticators'), 60_000, []);
  const { ask, dialog, banner } = useActions();
  return (
    <section>
      <h1>Authentication</h1>
      <p class="muted">How people log in. Authenticators are configured in the broker's configuration (auth.authenticators); this page shows them and can test a directory connection. Admins only.</p>
      <ErrorLine error={error} />
      {banner}
      {data?.authenticators.map((a) => (
        <article key={a.name} class="card" data-authenticator={a.name}>
          <h2>{a.label} <span class="muted small">({a.name}, {a.kind}{a.default ? ', default' : ''})</span></h2>
          <table class="grid">
            <tbody>
              <tr><th>Domains</th><td>{a.domains.join(', ') || '—'}</td></tr>
              <tr><th>Group cache</th><td>{a.kind === 'local' ? 'groups kept by the broker' : a.groupCacheSeconds ? `${a.groupCacheSeconds} s` : 'at login only'}</td></tr>
              {Object.entries(a.settings).map(([k, v]) => <tr key={k}><th>{k}</th><td class="small">{show(v)}</td></tr>)}
            </tbody>
          </table>
          {a.testable && (
            <button type="button" onClick={() => ask({
              title: `Test ${a.label}`, action: 'Test connection',
              body: <p>Connects to the directory as the broker does at a login (TLS, service account, base DN). Recorded in the audit log.</p>,
              run: async () => {
                const r = await api.post<TestResult>(`/auth/authenticators/${enc(a.name)}/test`);
                if (!r.ok) throw new Error(`${r.message}${r.server ? ` (${r.server})` : ''}`);
                return `${a.label}: ${r.message} ${r.server ?? ''} in ${r.milliseconds} ms.`;
              },
            })}>Test connection</button>
          )}
        </article>
      ))}
      {dialog}
    </section>
  );
}
