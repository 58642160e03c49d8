// Authentication (admin): the configured authenticators, read-only (they are set in config/,
// docs/authentication.md), with a "Test connection" that checks a directory answers (audited).
import { api, enc } from '../api.ts';
import { ErrorLine, useActions, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';
import { formatNumber } from '../i18n/format.ts';

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
      <h1>{t('authentication.authentication')}</h1>
      <p class="muted">{t('authentication.howPeopleLogInAuthenticators')}</p>
      <ErrorLine error={error} />
      {banner}
      {data?.authenticators.map((a) => (
        <article key={a.name} class="card" data-authenticator={a.name}>
          <h2>{a.label} <span class="muted small">({a.default ? t('authentication.kindDefault', { name: a.name, kind: a.kind }) : t('authentication.kind', { name: a.name, kind: a.kind })})</span></h2>
          <table class="grid">
            <tbody>
              <tr><th>{t('authentication.domains')}</th><td>{a.domains.join(', ') || '—'}</td></tr>
              <tr><th>{t('authentication.groupCache')}</th><td>{a.kind === 'local' ? t('authentication.groupsLocal') : a.groupCacheSeconds ? t('units.s', { s: formatNumber(a.groupCacheSeconds) }) : t('authentication.groupsAtLogin')}</td></tr>
              {Object.entries(a.settings).map(([k, v]) => <tr key={k}><th>{k}</th><td class="small">{show(v)}</td></tr>)}
            </tbody>
          </table>
          {a.testable && (
            <button type="button" onClick={() => ask({
              title: t('authentication.testName', { name: a.label }), action: t('authentication.testConnection'),
              body: <p>{t('authentication.connectsToTheDirectoryAs')}</p>,
              run: async () => {
                const r = await api.post<TestResult>(`/auth/authenticators/${enc(a.name)}/test`);
                if (!r.ok) throw new Error(`${r.message}${r.server ? ` (${r.server})` : ''}`);
                return t('authenticationM.labelMessageVInMilliseconds', { label: a.label, message: r.message, v: r.server ?? '', milliseconds: r.milliseconds });
              },
            })}>{t('authentication.testConnection')}</button>
          )}
        </article>
      ))}
      {dialog}
    </section>
  );
}
