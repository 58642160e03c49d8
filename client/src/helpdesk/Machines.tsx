// Machines of manual pools (lab PCs, RDS hosts, existing VMs): console health and the desktop
// each one is; add (one, or a CSV of a whole lab), change the password, remove. Credentials are
// write-only: the API answers only whether a machine has them.
import { useState } from 'preact/hooks';
import { api, enc, describeError } from '../api.ts';
import type { Pool } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';
import { t } from '../i18n/index.ts';

interface Machine {
  id: string; name: string; pool: string; protocol: 'vnc' | 'rdp'; address: string; port: number;
  security: string; ignoreCert: boolean; domain: string; mac: string; agent: boolean;
  hasUsername: boolean; hasPassword: boolean;
  health: 'unknown' | 'answering' | 'silent'; checkedAt: string | null; healthError: string;
  desktop: { state: string; user: string; session: string | null; lastError: string } | null;
}

interface ImportResult { added: string[]; failed: { line: number; name: string; code: string; field: string; message: string }[] }

const str = (f: FormData, k: string) => String(f.get(k) ?? '').trim();

function MachineForm(props: { pools: Pool[]; onDone: (ok: boolean, text: string) => void }) {
  const [protocol, setProtocol] = useState<'vnc' | 'rdp'>('vnc');
  return (
    <form
      class="card pool-form"
      data-testid="machine-form"
      onSubmit={async (e) => {
        e.preventDefault();
        const form = e.currentTarget;
        const f = new FormData(form);
        const port = str(f, 'port');
        const body = {
          name: str(f, 'name'), pool: str(f, 'pool'), protocol, address: str(f, 'address'),
          ...(port ? { port: Number(port) } : {}),
          username: str(f, 'username'), password: String(f.get('password') ?? ''),
          ...(protocol === 'rdp' ? { domain: str(f, 'domain'), security: str(f, 'security'), ignoreCert: f.get('ignoreCert') === 'on' } : {}),
          ...(str(f, 'mac') ? { mac: str(f, 'mac') } : {}),
          agent: f.get('agent') === 'on',
        };
        try {
          await api.post('/machines', body);
          form.reset();
          props.onDone(true, t('machinesM.machineNameAddedReadyOnce', { name: body.name }));
        } catch (err) {
          props.onDone(false, t('machinesM.addingNameFailedErr', { name: body.name, err: describeError(err) }));
        }
      }}
    >
      <h2>{t('machines.addAMachine')}</h2>
      <label>{t('machines.name')}{' '}<input name="name" required pattern="[a-z0-9]([a-z0-9-]*[a-z0-9])?" /></label>
      <label>{t('machines.pool')}{' '}<select name="pool" required>{props.pools.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}</select></label>
      <label>{t('machines.protocol')}{' '}<select name="protocol" value={protocol} onChange={(e) => setProtocol((e.target as HTMLSelectElement).value as 'vnc' | 'rdp')}><option value="vnc">VNC</option><option value="rdp">{t('machines.rdpNeedsGuacd')}</option></select></label>
      <label>{t('machines.address')}{' '}<input name="address" required /></label>
      <label>{t('machines.port')}{' '}<input name="port" type="number" min={1} max={65535} placeholder={protocol === 'rdp' ? '3389' : '5900'} /></label>
      <label>{t('machines.userName')}{' '}<input name="username" autocomplete="off" /></label>
      <label>{t('machines.password')}{' '}<input name="password" type="password" autocomplete="new-password" /></label>
      {protocol === 'rdp' && (
        <>
          <label>{t('machines.domain')}{' '}<input name="domain" /></label>
          <label>{t('machines.security')}{' '}<select name="security">{['any', 'nla', 'nla-ext', 'tls', 'vmconnect', 'rdp'].map((s) => <option key={s}>{s}</option>)}</select></label>
          <label><input name="ignoreCert" type="checkbox" />{' '}{t('machines.ignoreCertificate')}</label>
        </>
      )}
      <label>{t('machines.wakeOnLanMac')}{' '}<input name="mac" placeholder={t('machines.n001a2b3c4d')} /></label>
      <label><input name="agent" type="checkbox" />{' '}{t('machines.runsTheGuestAgent')}</label>
      <div class="buttons"><button class="primary">{t('machines.addMachine')}</button></div>
    </form>
  );
}

function CsvImport(props: { onDone: (ok: boolean, text: string) => void }) {
  const [result, setResult] = useState<ImportResult | null>(null);
  return (
    <form
      class="card"
      data-testid="machine-import"
      onSubmit={async (e) => {
        e.preventDefault();
        const csv = String(new FormData(e.currentTarget).get('csv') ?? '');
        try {
          const r = await api.post<ImportResult>('/machines/import', { csv });
          setResult(r);
          props.onDone(r.failed.length === 0, r.failed.length ? t('machines.importedSomeRefused', { count: r.added.length, refused: t('machines.linesRefused', { count: r.failed.length }) }) : t('machines.imported', { count: r.added.length }));
        } catch (err) {
          props.onDone(false, t('machinesM.importFailedErr', { err: describeError(err) }));
        }
      }}
    >
      <h2>{t('machines.importALabCsv')}</h2>
      <p class="muted">{t('machines.headerNamePoolProtocolAddress')}</p>
      <textarea name="csv" rows={5} cols={70} required aria-label={t('machines.csvLabel')} style={{ maxWidth: '100%' }} />
      <div class="buttons"><button>{t('machines.importCsv')}</button></div>
      {result && result.failed.length > 0 && (
        <ul class="bad">{result.failed.map((f) => <li key={f.line}>{t('machines.lineRefused', { line: f.line, name: f.name, field: f.field, message: f.message })}</li>)}</ul>
      )}
    </form>
  );
}

export function Machines() {
  const { data, error, reload } = usePoll(() => api.get<{ machines: Machine[] }>('/machines'), 5_000, [], true);
  const pools = usePoll(() => api.get<{ pools: Pool[] }>('/pools'), 30_000);
  const { ask, dialog, banner } = useActions();
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  const done = (ok: boolean, text: string) => {
    setNote({ ok, text });
    reload();
  };
  return (
    <section>
      <h1>{t('machines.machines')}</h1>
      <p class="muted">{t('machines.existingMachinesBrokeredByManual')}</p>
      <ErrorLine error={error} />
      {banner}
      {note && <p class={note.ok ? 'banner ok' : 'banner bad'} role="status">{note.text}</p>}
      <table class="grid">
        <thead><tr><th>{t('machines.machine')}</th><th>{t('machines.pool')}</th><th>{t('machines.console')}</th><th>{t('machines.health')}</th><th>{t('machines.desktop')}</th><th>{t('machines.credentials')}</th><th>{t('machines.actions')}</th></tr></thead>
        <tbody>
          {data?.machines.map((m) => (
            <tr key={m.id} data-machine={m.name}>
              <td>{m.name}{m.mac && <div class="muted">{t('machines.wol')}{' '}{m.mac}</div>}</td>
              <td>{m.pool}</td>
              <td>{m.protocol.toUpperCase()} {m.address}:{m.port}{m.protocol === 'rdp' && <div class="muted">{m.security}{m.domain ? `, ${m.domain}` : ''}{m.ignoreCert ? t('machines.certIgnored') : ''}</div>}</td>
              <td data-health={m.health} title={m.healthError}>{m.health === 'answering' ? t('machines.answering') : m.health === 'silent' ? (m.healthError ? t('machines.notAnsweringWhy', { error: m.healthError }) : t('machines.notAnswering')) : t('machines.notChecked')}</td>
              <td>{m.desktop ? <><StateBadge state={m.desktop.state} />{m.desktop.user && <span class="muted"> {m.desktop.user}</span>}</> : '—'}</td>
              <td>{m.hasUsername && m.hasPassword ? t('machines.credUserPassword') : m.hasUsername ? t('machines.credUser') : m.hasPassword ? t('machines.credPassword') : t('machines.credNone')}</td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: t('machinesM.newPasswordForName', { name: m.name }), action: t('machines.setPassword'), input: { label: t('machines.password') },
                  body: <p>{t('machines.storedEncryptedUsedForThe')}</p>,
                  run: async (pw) => { await api.patch(`/machines/${enc(m.name)}`, { password: pw }); reload(); return t('machinesM.passwordOfNameChanged', { name: m.name }); },
                })}>{t('machines.password')}</button>
                <button type="button" class="danger" onClick={() => ask({
                  title: t('machines.removeName', { name: m.name }), action: t('machines.remove'), danger: true,
                  body: <p>{t('machines.removeBody', { name: m.name, pool: m.pool })}</p>,
                  run: async () => { await api.del(`/machines/${enc(m.name)}`); reload(); return t('machines.removed', { name: m.name }); },
                })}>{t('machines.remove')}</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <MachineForm pools={pools.data?.pools ?? []} onDone={done} />
      <CsvImport onDone={done} />
      {dialog}
    </section>
  );
}
