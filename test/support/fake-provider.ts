// A test double of a hypervisor driver, for unit and integration tests of the broker core
// only. The product never ships or loads it; real drivers live in server/providers/.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Provider, DesktopSpec, PowerState, ConsoleEndpoint, Snapshot, InventoryItem, MigrationResult, CreateResult, HostInfo } from '../../server/providers/index.ts';

interface FakeVm {
  spec: DesktopSpec;
  host: string;
  power: PowerState;
  snapshots: Snapshot[];
  generation: number;
}

export class FakeProvider implements Provider {
  readonly kind = 'fake';
  readonly capabilities = { linkedClones: true, fullClones: true, refresh: true, snapshots: true, liveMigration: true, consoleProtocols: ['vnc'] as const };
  readonly vms = new Map<string, FakeVm>();
  readonly calls: string[] = [];
  delayMs = 0;
  /** Make the next N calls of an operation fail. */
  private failures = new Map<string, number>();

  constructor(readonly name = 'fake', private readonly hosts_ = ['host-a'], private readonly stateFile?: string) {
    // A state file lets the double outlive its process, like a real hypervisor outlives the broker.
    if (stateFile && existsSync(stateFile)) {
      for (const [id, vm] of Object.entries(JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, FakeVm>)) this.vms.set(id, vm);
    }
  }

  private save(): void {
    if (this.stateFile) writeFileSync(this.stateFile, JSON.stringify(Object.fromEntries(this.vms)));
  }

  failNext(op: string, times = 1): void {
    this.failures.set(op, times);
  }

  private async op(name: string, id: string): Promise<void> {
    this.calls.push(`${name}:${id}`);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const n = this.failures.get(name) ?? 0;
    if (n > 0) {
      this.failures.set(name, n - 1);
      throw new Error(`fake ${name} failure`);
    }
  }

  private vm(id: string): FakeVm {
    const v = this.vms.get(id);
    if (!v) throw new Error(`no desktop ${id}`);
    return v;
  }

  async create(spec: DesktopSpec): Promise<CreateResult> {
    await this.op('create', spec.id);
    const existing = this.vms.get(spec.id);
    if (existing) return { host: existing.host };
    // Like a real driver: nothing is placed on a host that does not answer.
    const up = this.hosts_.filter((h) => !this.unreachable.has(h));
    if (spec.host && this.unreachable.has(spec.host)) throw new Error(`host ${spec.host} is unreachable`);
    if (!spec.host && up.length === 0) throw new Error('every host is unreachable');
    const host = spec.host ?? up[this.vms.size % up.length]!;
    this.vms.set(spec.id, { spec, host, power: 'stopped', snapshots: [], generation: 1 });
    this.save();
    return { host };
  }
  async start(id: string): Promise<void> {
    await this.op('start', id);
    this.vm(id).power = 'running';
    this.save();
  }
  async stop(id: string): Promise<void> {
    await this.op('stop', id);
    this.vm(id).power = 'stopped';
  }
  async reboot(id: string): Promise<void> {
    await this.op('reboot', id);
    this.vm(id).power = 'running';
  }
  async destroy(id: string): Promise<void> {
    await this.op('destroy', id);
    this.vms.delete(id);
    this.save();
  }
  async refresh(spec: DesktopSpec): Promise<void> {
    await this.op('refresh', spec.id);
    const v = this.vm(spec.id);
    v.generation++;
    v.power = 'running';
  }
  async power(id: string): Promise<PowerState> {
    const v = this.vms.get(id);
    if (v && this.unreachable.has(v.host)) return 'unreachable';
    return v?.power ?? 'missing';
  }
  async snapshotCreate(id: string, name: string): Promise<Snapshot> {
    const s = { name, createdAt: new Date().toISOString() };
    this.vm(id).snapshots.push(s);
    return s;
  }
  async snapshotList(id: string): Promise<Snapshot[]> {
    return this.vm(id).snapshots;
  }
  async snapshotRevert(id: string, name: string): Promise<void> {
    if (!this.vm(id).snapshots.some((s) => s.name === name)) throw new Error('no such snapshot');
  }
  async snapshotDelete(id: string, name: string): Promise<void> {
    const v = this.vm(id);
    v.snapshots = v.snapshots.filter((s) => s.name !== name);
  }
  async migrate(id: string, targetHost: string): Promise<MigrationResult> {
    const v = this.vm(id);
    const from = v.host;
    v.host = targetHost;
    return { fromHost: from, toHost: targetHost, durationMs: 1 };
  }
  /** Tunnel tests point every desktop's console at a real VNC server (or a fake guacd ignores it). */
  consoleEndpoint: ConsoleEndpoint | null = null;

  async console(id: string): Promise<ConsoleEndpoint> {
    if (this.consoleEndpoint) return { ...this.consoleEndpoint };
    this.vm(id);
    return { protocol: 'vnc', host: '127.0.0.1', port: 5900, password: 'fake-secret' };
  }
  async inventory(): Promise<InventoryItem[]> {
    return [...this.vms.entries()].map(([desktopId, v]) => ({ desktopId, host: v.host, power: this.unreachable.has(v.host) ? 'unreachable' : v.power }));
  }
  /** Hosts that "do not answer", like a libvirt host whose daemon is down: desktops report unreachable. */
  readonly unreachable = new Set<string>();
  readonly maintenance = new Set<string>();
  async hosts(): Promise<HostInfo[]> {
    return this.hosts_.map((name) => {
      const mine = [...this.vms.values()].filter((v) => v.host === name);
      return { name, maintenance: this.maintenance.has(name), ...(this.unreachable.has(name) ? { reachable: false } : {}), capacity: { vcpu: 64, memoryMiB: 65536 }, used: { vcpu: mine.length, memoryMiB: mine.length * 256, desktops: mine.length } };
    });
  }
  async setHostMaintenance(host: string, on: boolean): Promise<void> {
    if (on) this.maintenance.add(host);
    else this.maintenance.delete(host);
  }
  async close(): Promise<void> {}
}
