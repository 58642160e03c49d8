// Machines of manual pools (lab PCs, RDS hosts, existing VMs): console health and the desktop
// each one is; add (one, or a CSV of a whole lab), change the password, remove. Credentials are
// write-only: the API answers only whether a machine has them.
import { useState } from 'preact/hooks';
import { api, enc, describeError } from '../api.ts';
import type { Pool } from '../types.ts';
import { ErrorLine, StateBadge, useActions, usePoll } from '../ui.tsx';

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
          props.onDone(true, `Machine ${body.name} added: ready once its console answers.`);
        } catch (err) {
          props.onDone(false, `Adding ${body.name} failed: ${describeError(err)}`);
        }
      }}
    >
      <h2>Add a machine</h2>
      <label>Name <input name="name" required pattern="[a-z0-9]([a-z0-9-]*[a-z0-9])?" /></label>
      <label>Pool <select name="pool" required>{props.pools.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}</select></label>
      <label>Protocol <select name="protocol" value={protocol} onChange={(e) => setProtocol((e.target as HTMLSelectElement).value as 'vnc' | 'rdp')}><option value="vnc">VNC</option><option value="rdp">RDP (needs guacd)</option></select></label>
      <label>Address <input name="address" required /></label>
      <label>Port <input name="port" type="number" min={1} max={65535} placeholder={protocol === 'rdp' ? '3389' : '5900'} /></label>
      <label>User name <input name="username" autocomplete="off" /></label>
      <label>Password <input name="password" type="password" autocomplete="new-password" /></label>
      {protocol === 'rdp' && (
        <>
          <label>Domain <input name="domain" /></label>
          <label>Security <select name="security">{['any', 'nla', 'nla-ext', 'tls', 'vmconnect', 'rdp'].map((s) => <option key={s}>{s}</option>)}</select></label>
          <label><input name="ignoreCert" type="checkbox" /> Ignore certificate</label>
        </>
      )}
      <label>Wake-on-LAN MAC <input name="mac" placeholder="00:1a:2b:3c:4d:5e" /></label>
      <label><input name="agent" type="checkbox" /> Runs the guest agent</label>
      <div class="buttons"><button class="primary">Add machine</button></div>
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
          props.onDone(r.failed.length === 0, `${r.added.length} machines added${r.failed.length ? `, ${r.failed.length} lines refused` : ''}.`);
        } catch (err) {
          props.onDone(false, `Import failed: ${describeError(err)}`);
        }
      }}
    >
      <h2>Import a lab (CSV)</h2>
      <p class="muted">Header: name,pool,protocol,address and optionally port,username,password,domain,security,ignoreCert,mac,agent.</p>
      <textarea name="csv" rows={5} cols={70} required />
      <div class="buttons"><button>Import CSV</button></div>
      {result && result.failed.length > 0 && (
        <ul class="bad">{result.failed.map((f) => <li key={f.line}>line {f.line} {f.name}: {f.field} {f.message}</li>)}</ul>
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
      <h1>Machines</h1>
      <p class="muted">Existing machines brokered by manual pools: the broker never creates, refreshes or deletes them. A machine whose console does not answer is not handed out.</p>
      <ErrorLine error={error} />
      {banner}
      {note && <p class={note.ok ? 'banner ok' : 'banner bad'} role="status">{note.text}</p>}
      <table class="grid">
        <thead><tr><th>Machine</th><th>Pool</th><th>Console</th><th>Health</th><th>Desktop</th><th>Credentials</th><th>Actions</th></tr></thead>
        <tbody>
          {data?.machines.map((m) => (
            <tr key={m.id} data-machine={m.name}>
              <td>{m.name}{m.mac && <div class="muted">WoL {m.mac}</div>}</td>
              <td>{m.pool}</td>
              <td>{m.protocol.toUpperCase()} {m.address}:{m.port}{m.protocol === 'rdp' && <div class="muted">{m.security}{m.domain ? `, ${m.domain}` : ''}{m.ignoreCert ? ', cert ignored' : ''}</div>}</td>
              <td data-health={m.health} title={m.healthError}>{m.health === 'answering' ? 'answering' : m.health === 'silent' ? `not answering${m.healthError ? ` (${m.healthError})` : ''}` : 'not checked yet'}</td>
              <td>{m.desktop ? <><StateBadge state={m.desktop.state} />{m.desktop.user && <span class="muted"> {m.desktop.user}</span>}</> : '—'}</td>
              <td>{m.hasUsername ? 'user' : ''}{m.hasUsername && m.hasPassword ? ' + ' : ''}{m.hasPassword ? 'password' : ''}{!m.hasUsername && !m.hasPassword ? 'none' : ''}</td>
              <td class="actions">
                <button type="button" onClick={() => ask({
                  title: `New password for ${m.name}`, action: 'Set password', input: { label: 'Password' },
                  body: <p>Stored encrypted; used for the next connections.</p>,
                  run: async (pw) => { await api.patch(`/machines/${enc(m.name)}`, { password: pw }); reload(); return `Password of ${m.name} changed.`; },
                })}>Password</button>
                <button type="button" class="danger" onClick={() => ask({
                  title: `Remove ${m.name}`, action: 'Remove', danger: true,
                  body: <p>{m.name} leaves pool {m.pool}. The machine itself is not touched.</p>,
                  run: async () => { await api.del(`/machines/${enc(m.name)}`); reload(); return `${m.name} removed.`; },
                })}>Remove</button>
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
