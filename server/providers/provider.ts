// The one interface every hypervisor driver implements. The broker only ever talks to
// desktops through it. Every operation is keyed by the broker's desktop id and idempotent:
// creating a desktop that exists, or destroying one that is gone, succeeds without change,
// so a reconciler may repeat any call after a crash or a timeout.

export interface ProviderCapabilities {
  /** Linked (copy-on-write) clones of an image. */
  linkedClones: boolean;
  /** Full copies of an image. */
  fullClones: boolean;
  /** Throw the desktop's changes away and start again from its image (non-persistent logoff). */
  refresh: boolean;
  /** Named checkpoints that can be reverted to. */
  snapshots: boolean;
  /** Move a running desktop to another host. */
  liveMigration: boolean;
  /** Console protocols this driver's desktops offer. */
  consoleProtocols: readonly ('vnc' | 'rdp')[];
}

export interface DesktopResources {
  vcpu: number;
  memoryMiB: number;
  diskGiB: number;
  network: string;
  graphics: 'vga' | 'virtio' | 'qxl' | 'cirrus' | 'none';
}

/** What a driver needs to build one desktop. */
export interface DesktopSpec {
  id: string;
  name: string;
  pool: string;
  mac: string;
  image: string;
  clone: 'linked' | 'full';
  resources: DesktopResources;
  /** Preferred host; the driver picks one with capacity when empty. */
  host?: string;
  /** The holder's folder on the file share (server/shares): host path, and the UNC path guests know. */
  home?: { path: string; unc?: string };
  /**
   * The per-desktop guest agent secret (docs/agent.md), handed to the guest through fw_cfg
   * `opt/vdi/agent-secret` from a 0600 file, never on a command line. Never exposed by the API.
   */
  agentSecret?: string;
}

/** How the broker reaches a desktop's guest agents (docs/agent.md): each call connects afresh. */
export interface AgentChannels {
  /** Our agent's port (org.vdibroker.agent.0). */
  vdi?: () => Promise<import('node:stream').Duplex>;
  /** qemu-guest-agent's port (org.qemu.guest_agent.0). */
  qga?: () => Promise<import('node:stream').Duplex>;
}

/** unreachable: the desktop's host does not answer (libvirt); it is neither missing nor stopped. */
export type PowerState = 'running' | 'stopped' | 'paused' | 'missing' | 'unreachable';

export interface ConsoleEndpoint {
  protocol: 'vnc' | 'rdp';
  host: string;
  port: number;
  /** Per-desktop console password: only ever handed to the streaming layer, never logged. */
  password?: string;
  username?: string;
  /** RDP only: guacd's security mode (any, nla, tls...), certificate check, Windows domain. Defaults: any, ignore, none. */
  rdp?: { security: string; ignoreCert: boolean; domain: string };
}

export interface Snapshot {
  name: string;
  createdAt: string;
  sizeBytes?: number;
}

export interface InventoryItem {
  desktopId: string;
  host: string;
  power: PowerState;
}

export interface MigrationResult {
  fromHost: string;
  toHost: string;
  durationMs: number;
  transferredBytes?: number;
}

/** A running live migration as the hypervisor reports it (memory and, when copied, disk). */
export interface MigrationProgress {
  /** 0..100: transferred of total so far. */
  percent: number;
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
}

export interface MigrateOptions extends OperationOptions {
  /** Called with the latest progress while the migration runs (drivers that can tell; optional). */
  onProgress?: (p: MigrationProgress) => void;
}

export interface CreateResult {
  host: string;
}

/** A place where desktops run, with its capacity (after overcommit) and what is used of it. */
export interface HostInfo {
  name: string;
  maintenance: boolean;
  capacity: { vcpu: number; memoryMiB: number };
  used: { vcpu: number; memoryMiB: number; desktops: number };
  /** false when the host's hypervisor does not answer (no placement there); absent = reachable. */
  reachable?: boolean;
}

export interface OperationOptions {
  signal?: AbortSignal;
}

export interface Provider {
  /** Instance name pools refer to (e.g. "local"). */
  readonly name: string;
  /** Driver kind (e.g. "qemu", "libvirt"). */
  readonly kind: string;
  readonly capabilities: ProviderCapabilities;

  /** Clone the desktop from its image and define it (not started). */
  create(spec: DesktopSpec, opts?: OperationOptions): Promise<CreateResult>;
  /** Power on and resolve once the desktop's console answers. */
  start(id: string, opts?: OperationOptions): Promise<void>;
  /** Graceful power-off, forced after timeoutMs. */
  stop(id: string, opts?: OperationOptions & { timeoutMs?: number }): Promise<void>;
  /** Soft reboot (guest asked) or hard reset. */
  reboot(id: string, opts?: OperationOptions & { hard?: boolean }): Promise<void>;
  /** Process and files gone. */
  destroy(id: string, opts?: OperationOptions): Promise<void>;
  /** Back to a clean clone of the image; running afterwards. Needs capabilities.refresh. */
  refresh(spec: DesktopSpec, opts?: OperationOptions): Promise<void>;
  /** The desktop's guest agent ports (drivers that wire them; docs/agent.md). */
  agentChannels?(id: string): Promise<AgentChannels>;
  power(id: string): Promise<PowerState>;

  snapshotCreate(id: string, name: string): Promise<Snapshot>;
  snapshotList(id: string): Promise<Snapshot[]>;
  snapshotRevert(id: string, name: string): Promise<void>;
  snapshotDelete(id: string, name: string): Promise<void>;

  migrate(id: string, targetHost: string, opts?: MigrateOptions): Promise<MigrationResult>;

  console(id: string): Promise<ConsoleEndpoint>;
  /** Every desktop this provider has, running or only on disk. */
  inventory(): Promise<InventoryItem[]>;

  /** The provider's hosts with capacity and load. */
  hosts(): Promise<HostInfo[]>;
  /** A host in maintenance takes no new desktops (running ones stay until moved). */
  setHostMaintenance(host: string, on: boolean): Promise<void>;

  /** Stop background work (desktops keep running). */
  close(): Promise<void>;
}
