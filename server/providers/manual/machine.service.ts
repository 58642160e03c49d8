// Adding, editing and removing the machines of manual pools (API, CLI, console). Every change
// is audited; credentials are sealed before they reach the store and never appear in answers,
// logs or audit details (views say hasUsername / hasPassword).
import { randomUUID } from 'node:crypto';
import { BrokerError } from '../../errors.ts';
import type { Store, Machine } from '../../store/index.ts';
import type { ProviderRegistry } from '../registry.ts';
import type { Actor, AuditService, DesktopState } from '../../broker/index.ts';
import { ManualProvider } from './manual.provider.ts';
import { DEFAULT_PORT, type MachineSpec, type MachineUpdate } from './machine.schema.ts';
import { parseMachinesCsv } from './csv.ts';

export interface MachineView {
  id: string;
  name: string;
  pool: string;
  provider: string;
  protocol: 'vnc' | 'rdp';
  address: string;
  port: number;
  security: string;
  ignoreCert: boolean;
  domain: string;
  mac: string;
  agent: boolean;
  hasUsername: boolean;
  hasPassword: boolean;
  health: Machine['health'];
  checkedAt: string | null;
  healthError: string;
  desktop: { state: DesktopState; user: string; session: string | null; lastError: string } | null;
}

export interface ImportResult {
  added: string[];
  failed: { line: number; name: string; code: string; field: string; message: string }[];
}

/** Desktop states in which the machine is someone's right now (removal waits for logoff). */
const BUSY: ReadonlySet<DesktopState> = new Set(['in_use']);
/** Tries at taking a machine's desktop to `deleting` while the reconcilers move it. */
const REMOVE_ATTEMPTS = 5;

export class MachineService {
  constructor(
    private readonly store: Store,
    private readonly providers: ProviderRegistry,
    private readonly audit: AuditService,
    private readonly now: () => number = Date.now,
  ) {}

  /** The manual driver of a pool; validation_failed if the pool is not a manual pool. */
  private async driverOf(poolName: string): Promise<ManualProvider> {
    const pool = await this.store.pools.get(poolName);
    if (!pool || pool.deleting) throw new BrokerError('not_found', `No pool named "${poolName}".`, { field: 'pool' });
    const p = this.providers.has(pool.provider) ? this.providers.get(pool.provider) : null;
    if (!(p instanceof ManualProvider)) throw new BrokerError('validation_failed', `Pool "${poolName}" is not a manual pool (its provider is not of kind manual).`, { field: 'pool' });
    return p;
  }

  private static needsGuacd(p: ManualProvider, protocol: 'vnc' | 'rdp'): void {
    if (protocol === 'rdp' && !p.rdpAvailable) {
      throw new BrokerError('guacd_required', 'RDP machines need an external guacd (set guacd.host); the built-in gateway streams VNC only.', { field: 'protocol' });
    }
  }

  private async find(idOrName: string): Promise<Machine> {
    const id = /^[0-9a-f-]{36}$/.test(idOrName) ? idOrName : await this.store.desktops.nameTaken(idOrName);
    const m = id ? await this.store.machines.get(id) : null;
    if (!m) throw new BrokerError('not_found', `No machine named "${idOrName.slice(0, 64)}".`);
    return m;
  }

  async view(m: Machine): Promise<MachineView> {
    const d = await this.store.desktops.get(m.id);
    return {
      id: m.id, name: m.name, pool: m.pool, provider: m.provider, protocol: m.protocol, address: m.address, port: m.port,
      security: m.security, ignoreCert: m.ignoreCert, domain: m.domain, mac: m.mac, agent: m.agent,
      hasUsername: m.hasUsername, hasPassword: m.hasPassword,
      health: m.health, checkedAt: m.checkedAt ? new Date(m.checkedAt).toISOString() : null, healthError: m.healthError,
      desktop: d && d.state !== 'deleted' ? { state: d.state, user: d.user, session: d.session || null, lastError: d.lastError } : null,
    };
  }

  async list(filter: { pool?: string } = {}): Promise<MachineView[]> {
    return Promise.all((await this.store.machines.list(filter)).map((m) => this.view(m)));
  }

  async get(idOrName: string): Promise<MachineView> {
    return this.view(await this.find(idOrName));
  }

  async add(actor: Actor, spec: MachineSpec): Promise<MachineView> {
    const p = await this.driverOf(spec.pool);
    MachineService.needsGuacd(p, spec.protocol);
    const id = randomUUID();
    const now = this.now();
    const m: Machine = {
      id, provider: p.name, pool: spec.pool, name: spec.name, protocol: spec.protocol, address: spec.address,
      port: spec.port ?? DEFAULT_PORT[spec.protocol], security: spec.security, ignoreCert: spec.ignoreCert, domain: spec.domain,
      mac: spec.mac ?? '', agent: spec.agent,
      sealed: await p.seal(id, { username: spec.username, password: spec.password }),
      hasUsername: spec.username !== '', hasPassword: spec.password !== '',
      createdAt: now, updatedAt: now, health: 'unknown', checkedAt: 0, healthError: '',
    };
    const r = await this.store.machines.add(m, now);
    if (!r.ok) {
      const what = r.field === 'name' ? `A desktop or machine named "${spec.name}" exists.` : r.field === 'mac' ? `MAC ${spec.mac} belongs to another desktop.` : r.code === 'not_found' ? `No pool named "${spec.pool}".` : `Pool "${spec.pool}" is not a manual pool.`;
      throw new BrokerError(r.code, what, { field: r.field });
    }
    await this.audit.record(actor, 'machine.create', { type: 'machine', id: m.name }, { pool: m.pool, protocol: m.protocol, address: m.address, port: m.port, mac: m.mac || undefined });
    return this.view(m);
  }

  async update(actor: Actor, idOrName: string, patch: MachineUpdate): Promise<MachineView> {
    const m = await this.find(idOrName);
    const p = await this.driverOf(m.pool);
    const protocol = patch.protocol ?? m.protocol;
    MachineService.needsGuacd(p, protocol);
    const next: Partial<Machine> = { updatedAt: this.now() };
    for (const k of ['address', 'port', 'security', 'ignoreCert', 'domain', 'agent'] as const) if (patch[k] !== undefined) (next as Record<string, unknown>)[k] = patch[k];
    if (patch.protocol !== undefined) {
      next.protocol = patch.protocol;
      // A protocol change without a port takes the new protocol's default port.
      if (patch.port === undefined && m.port === DEFAULT_PORT[m.protocol]) next.port = DEFAULT_PORT[patch.protocol];
    }
    if (patch.username !== undefined || patch.password !== undefined) {
      const cur = await p.credentials(m.id, m.sealed);
      const c = { username: patch.username ?? cur.username, password: patch.password ?? cur.password };
      next.sealed = await p.seal(m.id, c);
      next.hasUsername = c.username !== '';
      next.hasPassword = c.password !== '';
    }
    if (patch.mac !== undefined && !(await this.store.machines.claimMac(m.id, m.mac, patch.mac))) {
      throw new BrokerError('already_exists', `MAC ${patch.mac} belongs to another desktop.`, { field: 'mac' });
    }
    if (patch.mac !== undefined) next.mac = patch.mac;
    if (!(await this.store.machines.update(m.id, next))) throw new BrokerError('not_found', `No machine named "${m.name}".`);
    // Which fields changed, never their values (credentials among them).
    await this.audit.record(actor, 'machine.update', { type: 'machine', id: m.name }, { pool: m.pool, changed: Object.keys(patch) });
    return this.get(m.id);
  }

  /**
   * Removes a machine from its pool: its desktop goes (the machine itself is never touched).
   * Refused while a session is on it.
   */
  async remove(actor: Actor, idOrName: string): Promise<void> {
    const m = await this.find(idOrName);
    // The reconcilers move a machine's desktop between ready, refreshing and error by themselves:
    // a race with one of them is retried here rather than answered with "try again".
    for (let attempt = 1; ; attempt++) {
      const d = await this.store.desktops.get(m.id);
      if (d && BUSY.has(d.state)) throw new BrokerError('desktop_in_use', `Machine "${m.name}" has a live session; log the user off first.`);
      if (!d || d.state === 'deleting' || d.state === 'deleted') break;
      const r = await this.store.desktops.transition(d.id, 'deleting', { expect: [d.state], reason: 'machine removed', now: this.now() });
      if (r.ok) break;
      if (attempt >= REMOVE_ATTEMPTS) throw new BrokerError('conflict', `Machine "${m.name}" keeps changing state (${r.current}); try again.`);
    }
    await this.store.machines.remove(m.id);
    await this.audit.record(actor, 'machine.delete', { type: 'machine', id: m.name }, { pool: m.pool });
  }

  /**
   * Adds every valid line of a CSV file; lines that are invalid or collide are reported, not
   * added. A file that is not a machines CSV at all is refused as a whole.
   */
  async importCsv(actor: Actor, text: string): Promise<ImportResult> {
    const parsed = parseMachinesCsv(text);
    if ('error' in parsed) throw new BrokerError('validation_failed', `CSV: ${parsed.error}.`, { field: 'csv' });
    const out: ImportResult = { added: [], failed: [] };
    for (const row of parsed.rows) {
      if (!row.spec) {
        out.failed.push({ line: row.line, name: '', code: 'validation_failed', field: row.error!.field, message: row.error!.message });
        continue;
      }
      try {
        out.added.push((await this.add(actor, row.spec)).name);
      } catch (err) {
        const e = err instanceof BrokerError ? err : new BrokerError('internal_error');
        out.failed.push({ line: row.line, name: row.spec.name, code: e.code, field: e.field ?? '', message: e.message });
      }
    }
    await this.audit.record(actor, 'machine.import', { type: 'machine', id: 'csv' }, { added: out.added.length, failed: out.failed.length }, out.failed.length ? 'failed' : 'ok');
    return out;
  }
}
