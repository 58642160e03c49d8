// Devices: enrolled thin clients (filter by location and state; rename, move, revoke) and, for
// admins, enrolment codes (made here, shown once).
import { useEffect, useState } from 'preact/hooks';
import { api, describeError, enc } from '../api.ts';
import type { Me } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';
import { t, tParts } from '../i18n/index.ts';
import { formatDateTime } from '../i18n/format.ts';

interface DeviceRow {
  id: string; name: string; location: string; mode: string; state: 'active' | 'revoked'; displayPool: string | null; idleSeconds: number;
  createdAt: number; lastSeenAt: number; lastSeenAddress: string; user: string | null; revokedAt: number | null; revokedBy: string | null;
}
interface CodeRow { id: string; location: string; mode: string; name: string | null; uses: number; usesLeft: number; expiresAt: number; createdBy: string }

const MODES = ['personal-kiosk', 'shared-lab', 'room-display'];
const when = (ms: number) => (ms ? formatDateTime(ms) : '—');

function NewCode(props: { onMade: () => void }) {
  const [made, setMade] = useState<{ code: string; url: string; location: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [mode, setMode] = useState('personal-kiosk');
  return (
    <form
      class="inline-form"
      data-testid="new-code"
      onSubmit={async (e) => {
        e.preventDefault();
        const f = new FormData(e.currentTarget);
        const num = (k: string) => (String(f.get(k) ?? '') === '' ? undefined : Number(f.get(k)));
        const text = (k: string) => String(f.get(k) ?? '').trim() || undefined;
        setError(null);
        try {
          const r = await api.post<{ code: string; enrolment: CodeRow }>('/devices/enrolment-codes', {
            location: text('location'), mode, name: text('name'), displayPool: text('displayPool'),
            uses: num('uses') ?? 1, expiresInSeconds: (num('hours') ?? 24) * 3600, idleSeconds: num('idleSeconds'),
          });
          setMade({ code: r.code, url: `${location.origin}/enroll?code=${enc(r.code)}`, location: r.enrolment.location });
          props.onMade();
        } catch (err) {
          setError(describeError(err));
        }
      }}
    >
      <h2>{t('devices.newEnrolmentCode')}</h2>
      <label>{t('devices.location')}{' '}<input name="location" required pattern="[a-z0-9][a-z0-9._\-]*" placeholder={t('devices.lab1')} /></label>
      <label>{t('devices.mode')}{' '}<select value={mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value)}>{MODES.map((m) => <option key={m} value={m}>{t(`devices.modes.${m}`)}</option>)}</select></label>
      <label>{t('devices.name')}{' '}<input name="name" placeholder={t('devices.optional')} /></label>
      {mode === 'room-display' && <label>{t('devices.poolShown')}{' '}<input name="displayPool" required /></label>}
      {mode === 'shared-lab' && <label>{t('devices.idleLogoffS')}{' '}<input name="idleSeconds" type="number" min={0} max={86400} placeholder="300" /></label>}
      <label>{t('devices.uses')}{' '}<input name="uses" type="number" min={1} max={1000} defaultValue="1" /></label>
      <label>{t('devices.validForHours')}{' '}<input name="hours" type="number" min={1} max={720} defaultValue="24" /></label>
      <button class="primary">{t('devices.makeCode')}</button>
      <ErrorLine error={error} />
      {made && (
        <p class="banner ok" role="status" data-testid="code-made">
          {tParts('devices.codeMade', { code: <code data-testid="code">{made.code}</code>, url: <code>{made.url}</code> }, { location: made.location })}</p>
      )}
    </form>
  );
}

export function Devices() {
  const [location_, setLocation] = useState('');
  const [state, setState] = useState('');
  const [isAdmin, setAdmin] = useState(false);
  useEffect(() => void api.get<Me>('/me').then((me) => setAdmin(me.user.role === 'admin'), () => undefined), []);
  const q = new URLSearchParams({ ...(location_ ? { location: location_ } : {}), ...(state ? { state } : {}) }).toString();
  const { data, error, reload } = usePoll(() => api.get<{ devices: DeviceRow[] }>(`/devices${q ? `?${q}` : ''}`), 5_000, [q]);
  const codes = usePoll(() => (isAdmin ? api.get<{ enrolments: CodeRow[] }>('/devices/enrolment-codes') : Promise.resolve({ enrolments: [] })), 10_000, [isAdmin]);
  const { ask, dialog, banner } = useActions();
  return (
    <section>
      <h1>{t('devices.devices')}</h1>
      <p class="muted">{t('devices.enrolledThinClientsRevokingOne')}</p>
      <div class="filters">
        <label>{t('devices.location')}{' '}<input value={location_} placeholder={t('devices.all')} onChange={(e) => setLocation((e.target as HTMLInputElement).value.trim())} /></label>
        <label>{t('devices.state')}{' '}<select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}><option value="">{t('devices.all')}</option><option>{t('devices.active')}</option><option>{t('devices.revoked')}</option></select></label>
      </div>
      <ErrorLine error={error} />
      {banner}
      <table class="grid" data-testid="devices">
        <thead><tr><th>{t('devices.name')}</th><th>{t('devices.location')}</th><th>{t('devices.mode')}</th><th>{t('devices.state')}</th><th>{t('devices.userNow')}</th><th>{t('devices.lastSeen')}</th><th>{t('devices.actions')}</th></tr></thead>
        <tbody>
          {data?.devices.map((d) => (
            <tr key={d.id} data-device={d.id}>
              <td>{d.name}</td>
              <td>{d.location}</td>
              <td>{t(`devices.modes.${d.mode}`, { defaultValue: d.mode })}{d.displayPool ? ` (${d.displayPool})` : ''}</td>
              <td><StateBadge state={d.state} /></td>
              <td>{d.user ?? '—'}</td>
              <td class="small">{when(d.lastSeenAt)} {d.lastSeenAddress}</td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: t('devices.renameName', { name: d.name }), action: t('devices.rename'), body: <p>{t('devices.theNameTheHelpdeskAnd')}</p>, input: { label: t('devices.newName'), value: d.name },
                  run: async (name) => { await api.patch(`/devices/${enc(d.id)}`, { name }); reload(); return t('devicesM.renamedToName', { name: name }); },
                })}>{t('devices.rename')}</button>
                <button type="button" onClick={() => ask({
                  title: t('devices.moveName', { name: d.name }), action: t('devices.move'), body: <p>{t('devices.poolsRestrictedToLocationsFollow')}</p>, input: { label: t('devices.location'), value: d.location },
                  run: async (loc) => { await api.patch(`/devices/${enc(d.id)}`, { location: loc }); reload(); return t('devicesM.nameMovedToLoc', { name: d.name, loc: loc }); },
                })}>{t('devices.move')}</button>
                {d.state === 'active' && (
                  <button type="button" class="danger" onClick={() => ask({
                    title: t('devices.revokeName', { name: d.name }), action: t('devices.revoke'), danger: true,
                    body: <p>{t('devices.revokeBody', { name: d.name })}</p>,
                    run: async () => { await api.post(`/devices/${enc(d.id)}/revoke`); reload(); return t('devicesM.nameWasRevoked', { name: d.name }); },
                  })}>{t('devices.revoke')}</button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.devices.length === 0 && <p class="muted">{t('devices.noDeviceMatches')}</p>}
      {isAdmin && (
        <>
          <NewCode onMade={codes.reload} />
          <h2>{t('devices.enrolmentCodes')}</h2>
          <table class="grid">
            <thead><tr><th>{t('devices.location')}</th><th>{t('devices.mode')}</th><th>{t('devices.name')}</th><th>{t('devices.usesLeft')}</th><th>{t('devices.expires')}</th><th>{t('devices.madeBy')}</th><th /></tr></thead>
            <tbody>
              {codes.data?.enrolments.map((c) => (
                <tr key={c.id}>
                  <td>{c.location}</td><td>{c.mode}</td><td>{c.name ?? '—'}</td><td>{c.usesLeft} / {c.uses}</td><td>{when(c.expiresAt)}</td><td>{c.createdBy}</td>
                  <td><button type="button" onClick={() => ask({ title: t('devices.withdrawCode'), action: t('devices.withdraw'), danger: true, body: <p>{t('devices.theCodeStopsWorkingNow')}</p>, run: async () => { await api.del(`/devices/enrolment-codes/${enc(c.id)}`); codes.reload(); return t('devicesM.codeWithdrawn'); } })}>{t('devices.withdraw')}</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {dialog}
    </section>
  );
}
