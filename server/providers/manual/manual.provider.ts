// The `manual` driver: desktops that are existing machines (lab PCs, RDS hosts, servers with
// xrdp, VMs made by hand). The broker never creates, refreshes, powers off or deletes them:
// "create" checks the machine is registered, "start" wakes it (Wake-on-LAN when it has a MAC)
// and waits for its console, "destroy" only forgets the desktop (the machine record is the
// machine service's). Health is the console answering (probe.ts), checked by the
// machine-health reconciler (server/jobs/machine-health.ts).
import { BrokerError } from '../../errors.ts';
import { derivedKey, type Machine, type MachinesRepository } from '../../store/index.ts';
import type { Logger } from '../../observability/index.ts';
import type {
  Provider, ProviderCapabilities, DesktopSpec, CreateResult, OperationOptions, PowerState, Snapshot,
  MigrationResult, ConsoleEndpoint, InventoryItem, HostInfo,
} from '../provider.ts';
import { CREDENTIALS_KEY_PURPOSE, openCredentials, sealCredentials, type Credentials } from './credentials.ts';
import { probeConsole, type ProbeResult } from './probe.ts';
import { wake } from './wake.ts';

export interface ManualProviderOptions {
  name: string;
  machines: MachinesRepository;
  /** The tunnel secret (store.tickets.secret): machine credentials are sealed with a key derived from it. */
  secret: () => Promise<string>;
  /** An external guacd is configured (guacd.host): only then can RDP consoles be streamed. */
  guacd: boolean;
  /** One console probe. */
  probeTimeoutMs: number;
  /** How long "start" waits for a woken machine's console. */
  startTimeoutMs: number;
  /** How often the health reconciler probes every machine. */
  healthIntervalMs: number;
  /** Where Wake-on-LAN packets go (a broadcast address of the machines' network). */
  wakeAddress: string;
  logger: Logger;
}

export interface MachineProbe {
  machine: Machine;
  result: ProbeResult;
}

/** At most this many console probes at once. */
const PROBE_CONCURRENCY = 16;

const unsupported = (what: string) => new BrokerError('not_supported', `A machine of a manual pool cannot ${what}: the broker does not manage it.`);

export class ManualProvider implements Provider {
  readonly kind = 'manual';
  readonly capabilities: ProviderCapabilities;
  private keyP: Promise<Buffer> | undefined;

  constructor(private readonly o: ManualProviderOptions) {
    // No clones: the reconcilers (pool-sizing, desktop-lifecycle) read this as "never creates or rebuilds a desktop".
    this.capabilities = { linkedClones: false, fullClones: false, refresh: false, snapshots: false, liveMigration: false, consoleProtocols: o.guacd ? ['vnc', 'rdp'] : ['vnc'] };
  }

  get name(): string {
    return this.o.name;
  }

  get healthIntervalMs(): number {
    return this.o.healthIntervalMs;
  }

  /** RDP consoles can be streamed (an external guacd is configured). */
  get rdpAvailable(): boolean {
    return this.o.guacd;
  }

  private key(): Promise<Buffer> {
    this.keyP ??= this.o.secret().then(
      (s) => derivedKey(s, CREDENTIALS_KEY_PURPOSE),
      (err: unknown) => {
        this.keyP = undefined;
        throw err;
      },
    );
    return this.keyP;
  }

  /** Seals a machine's credentials for the store (the clear form never leaves this driver). */
  async seal(machineId: string, c: Credentials): Promise<string> {
    return sealCredentials(await this.key(), machineId, c);
  }

  async credentials(machineId: string, sealed: string): Promise<Credentials> {
    return openCredentials(await this.key(), machineId, sealed);
  }

  /** The VNC password the probe authenticates with (so the server does not count it as a failed login). */
  private async vncPassword(m: Machine): Promise<string | undefined> {
    if (m.protocol !== 'vnc' || !m.hasPassword) return undefined;
    return (await this.credentials(m.id, m.sealed).catch(() => ({ password: '' }))).password || undefined;
  }

  private async machine(id: string): Promise<Machine> {
    const m = await this.o.machines.get(id);
    if (!m || m.provider !== this.name) throw new BrokerError('not_found', 'No such machine.');
    return m;
  }

  async create(spec: DesktopSpec): Promise<CreateResult> {
    return { host: (await this.machine(spec.id)).address };
  }

  /** Wakes the machine (when it has a MAC) and resolves once its console answers. */
  async start(id: string, opts: OperationOptions = {}): Promise<void> {
    const m = await this.machine(id);
    if (m.mac) await wake(m.mac, this.o.wakeAddress).catch((err: Error) => this.o.logger.warn({ machine: m.name, err: err.message }, 'wake-on-LAN packet not sent'));
    const deadline = Date.now() + this.o.startTimeoutMs;
    let last: ProbeResult = { ok: false, detail: 'not probed' };
    const password = await this.vncPassword(m);
    while (!opts.signal?.aborted) {
      last = await probeConsole(m.protocol, m.address, m.port, this.o.probeTimeoutMs, password);
      await this.o.machines.setHealth(m.id, last.ok ? 'answering' : 'silent', Date.now(), last.ok ? '' : last.detail);
      if (last.ok || Date.now() + 500 > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (!last.ok) throw new Error(`console of ${m.name} (${m.protocol.toUpperCase()}) not answering: ${last.detail}`);
  }

  async stop(): Promise<void> {
    throw unsupported('be powered off');
  }

  async reboot(): Promise<void> {
    throw unsupported('be rebooted');
  }

  /** Forgets the desktop; the machine itself is never touched. */
  async destroy(): Promise<void> {}

  async refresh(): Promise<void> {
    throw unsupported('be refreshed');
  }

  /** Registered machines count as running: whether they answer is the health reconciler's business. */
  async power(id: string): Promise<PowerState> {
    const m = await this.o.machines.get(id);
    return m && m.provider === this.name ? 'running' : 'missing';
  }

  async snapshotCreate(): Promise<Snapshot> {
    throw unsupported('take snapshots');
  }
  async snapshotList(): Promise<Snapshot[]> {
    return [];
  }
  async snapshotRevert(): Promise<void> {
    throw unsupported('revert snapshots');
  }
  async snapshotDelete(): Promise<void> {
    throw unsupported('delete snapshots');
  }
  async migrate(): Promise<MigrationResult> {
    throw unsupported('be migrated');
  }

  async console(id: string): Promise<ConsoleEndpoint> {
    const m = await this.machine(id);
    const c = await this.credentials(m.id, m.sealed);
    const base = { host: m.address, port: m.port, ...(c.password ? { password: c.password } : {}), ...(c.username ? { username: c.username } : {}) };
    if (m.protocol === 'vnc') return { protocol: 'vnc', ...base };
    return { protocol: 'rdp', ...base, rdp: { security: m.security, ignoreCert: m.ignoreCert, domain: m.domain } };
  }

  async inventory(): Promise<InventoryItem[]> {
    return (await this.o.machines.list({ provider: this.name })).map((m) => ({ desktopId: m.id, host: m.address, power: 'running' as const }));
  }

  /** Machines are not placed on hosts. */
  async hosts(): Promise<HostInfo[]> {
    return [];
  }

  async setHostMaintenance(): Promise<void> {}

  /** Probes every machine of this driver's pools (at most PROBE_CONCURRENCY at once) and records what answered. */
  async probeAll(now: () => number = Date.now): Promise<MachineProbe[]> {
    const machines = await this.o.machines.list({ provider: this.name });
    const out: MachineProbe[] = [];
    let next = 0;
    const worker = async () => {
      while (next < machines.length) {
        const m = machines[next++]!;
        const result = await probeConsole(m.protocol, m.address, m.port, this.o.probeTimeoutMs, await this.vncPassword(m));
        await this.o.machines.setHealth(m.id, result.ok ? 'answering' : 'silent', now(), result.ok ? '' : result.detail);
        out.push({ machine: m, result });
      }
    };
    await Promise.all(Array.from({ length: Math.min(PROBE_CONCURRENCY, machines.length) }, worker));
    return out;
  }

  async close(): Promise<void> {}
}
