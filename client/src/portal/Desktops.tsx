// "My desktops": the pools I am entitled to, with the state of my desktop in each.
import { api, enc } from '../api.ts';
import { Link, navigate } from '../router.tsx';
import type { MyPool } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';
import { t as tr, useT } from '../i18n/index.ts';

const STATE_TEXT = new Set(['provisioning', 'ready', 'assigned', 'in_use', 'refreshing', 'deleting', 'error']);

export function MyDesktops(props: { notice?: string | undefined; staff?: boolean }) {
  const { data, error, reload } = usePoll(() => api.get<{ pools: MyPool[] }>('/me/pools'), 3000);
  const { ask, dialog, banner } = useActions();
  const t = useT();
  return (
    <main class="page" id="main" tabIndex={-1}>
      <h1>{t('app.myDesktops')}</h1>
      {props.notice && <p class="banner ok" role="status">{props.notice}</p>}
      <ErrorLine error={error} />
      {banner}
      {data && data.pools.length === 0 && (props.staff
        ? <p data-testid="staff-no-desktops">{t('desktops.noneStaff')} <Link href="/helpdesk">{t('desktops.openConsole')}</Link></p>
        : <p>{t('desktops.none')}</p>)}
      <ul class="tiles">
        {data?.pools.map((p) => (
          <li key={p.name} class="tile" data-pool={p.name}>
            <h2>{p.displayName}</h2>
            {p.description && <p class="muted">{p.description}</p>}
            <p>
              {p.desktop ? (
                <>
                  <span class="desktop-name">{p.desktop.name}</span> <StateBadge state={p.desktop.state} /> <span class="muted">{STATE_TEXT.has(p.desktop.state) ? t(`desktops.state.${p.desktop.state}`) : ''}</span>
                  {p.desktop.session && <span class="muted"> · {t('desktops.sessionOpen')}</span>}
                </>
              ) : (
                <span class="muted">{p.assignment === 'dedicated' ? t('desktops.dedicated') : t('desktops.floating')}</span>
              )}
            </p>
            <p class="muted small">{p.persistence === 'persistent' ? t('desktops.persistent') : t('desktops.nonPersistent')}</p>
            {p.maintenance && (
              <p class="banner bad" data-testid="maintenance">
                {p.available ? t('desktops.maintenanceRunning') : t('desktops.maintenance')}
              </p>
            )}
            <button class="primary" type="button" disabled={!p.available} onClick={() => navigate(`/desktop/${encodeURIComponent(p.name)}`)}>
              {p.desktop?.session ? t('desktops.reconnect') : t('desktops.launch')}
            </button>
            {p.desktop?.session && (
              <button type="button" class="danger" onClick={() => ask({
                title: t('desktops.logoffQ', { name: p.desktop!.name }), action: t('sessions.logoff'), danger: true,
                body: <p>{t('desktops.logoffBody')} {p.persistence === 'persistent' ? t('desktops.keepsDisk') : t('desktops.refreshed')} {t('desktops.logoffHint')}</p>,
                run: async () => { await api.post(`/me/sessions/${enc(p.desktop!.session!)}/logoff`); reload(); return tr('desktops.loggedOff', { name: p.desktop!.name }); },
              })}>{t('sessions.logoff')}</button>
            )}
          </li>
        ))}
      </ul>
      {dialog}
    </main>
  );
}
