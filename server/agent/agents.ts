import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Logger, Metrics } from '../observability/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { AgentBus } from '../store/agent-bus.ts';
import { VdiChannel } from './channel.ts';
import { QgaChannel } from './qga.ts';
import type { DropReason, GuestEventName } from './protocol.ts';

// The broker's side of the guest agents (docs/agent.md). The replica holding the `agents`
// lease holds one channel per running desktop (our agent, or qemu-guest-agent for images
// that only have that); every other replica reaches them through the agent bus (Redis), so
// the API below is the same everywhere.

export type AgentKind = 'vdi' | 'qga' | 'none';

export interface AgentDesktop {
  id: string;
  provider: string;
  image: string;
}

export interface HomeMount {
  unc: string;
  host: string;
  port: number;
  share: string;
  username: string;
  password: string;
}

export interface AgentStatus {
  connected: boolean;
  via: AgentKind;
  agent?: string;
  user?: string;
  idleSeconds?: number;
  lastSeenAt?: number;
  /** When the guest last proved it is up (hello, qga ping), ms. */
  readyAt?: number;
  os?: { id?: string; name?: string; version?: string; kernel?: string };
}

export interface GuestEvent {
  desktop: string;
  event: GuestEventName;
  user?: string;
  idleSeconds?: number;
  at: number;
}

export interface ImageAgent {
  agent: AgentKind;
  bootGraceMs: number;
}

export interface AgentsOptions {
  providers: ProviderRegistry;
  bus: AgentBus;
  logger: Logger;
  metrics: Metrics;
  /** The per-desktop secret (protocol.ts agentSecret). */
  secretOf: (desktopId: string) => Promise<string>;
  /** Which agent an image ("name:version") runs and its boot grace. */
  imageAgent: (ref: string) => Promise<ImageAgent>;
  /** The desktop record behind an id (status() of a desktop with no channel yet). */
  desktopOf: (id: string) => Promise<AgentDesktop | undefined>;
  readyTimeoutMs: number;
  /**
   * true when a job runner decides which replica holds the connections (the `agents` lease):
   * until this replica's pass holds it, calls go through the bus. false: this replica alone.
   */
  leased?: boolean | (() => boolean);
  /** guest-exec through qemu-guest-agent when the caller does not say (pool policy). */
  qgaExecDefault?: boolean;
  now?: () => number;
}

export interface Agents {
  readonly readyTimeoutMs: number;
  waitReady(d: AgentDesktop, o: { timeoutMs: number; signal?: AbortSignal }): Promise<{ via: 'vdi' | 'qga' | 'grace'; ms: number }>;
  logon(d: AgentDesktop, req: { user: string; display: string; home?: HomeMount }, o: { timeoutMs: number }): Promise<{ home: string; mounted: boolean; ms: number }>;
  /** true when the guest's agent logged the user off; false when the desktop has no agent of ours to ask. */
  logoff(d: AgentDesktop, user: string, o: { timeoutMs: number }): Promise<boolean>;
  message(d: AgentDesktop, m: { title: string; text: string }): Promise<boolean>;
  /** `known`: the desktop's record when the caller has it (saves reading it again). */
  status(desktopId: string, known?: AgentDesktop): Promise<AgentStatus | undefined>;
  exec(d: AgentDesktop, cmd: { path: string; args: string[] }, o: { allow?: boolean; timeoutMs: number }): Promise<{ exitcode: number; stdout: string; stderr: string }>;
  on(event: 'guest', cb: (e: GuestEvent) => void): void;
}

type Channel = { kind: 'vdi'; ch: VdiChannel } | { kind: 'qga'; ch: QgaChannel };

/** status() of a desktop whose image runs no agent (a fresh object each time: callers may keep it). */
const NO_AGENT_STATUS: AgentStatus = { connected: false, via: 'none' };

export class AgentHub implements Agents {
  readonly readyTimeoutMs: number;
  private readonly channels = new Map<string, Channel>();
  private readonly events = new EventEmitter();
  private readonly log: Logger;
  private readonly now: () => number;
  /** Whether this replica holds the connections (the agents lease); no lease check = alone. */
  private holds: (() => boolean) | undefined;
  private closed = false;

  constructor(private readonly o: AgentsOptions) {
    this.readyTimeoutMs = o.readyTimeoutMs;
    this.log = o.logger.child({ component: 'agents' });
    this.now = o.now ?? Date.now;
    this.events.setMaxListeners(50);
    o.bus.serve(() => this.local(), (op, args, timeoutMs) => this.runRemote(op, args, timeoutMs));
  }

  on(event: 'guest', cb: (e: GuestEvent) => void): void {
    this.events.on(event, cb);
  }

  /** The agents reconcile pass (runner, under the `agents` lease): a channel per running desktop. */
  async sync(running: AgentDesktop[], holdsLease: () => boolean): Promise<void> {
    this.holds = holdsLease;
    await this.o.bus.open();
    const want = new Set(running.map((d) => d.id));
    for (const d of running) if (!this.channels.has(d.id)) await this.ensure(d).catch((e: Error) => this.log.debug({ desktop: d.id, err: e.message }, 'no agent channel'));
    for (const [id, c] of this.channels) if (!want.has(id) && !this.waiting.has(id)) this.drop(id, c);
  }

  /** Closes the channel of a desktop that is gone or stopped. */
  forget(id: string): void {
    const c = this.channels.get(id);
    if (c) this.drop(id, c);
  }

  private drop(id: string, c: Channel): void {
    this.channels.delete(id);
    if ((c.kind === 'vdi' && c.ch.hello) || (c.kind === 'qga' && c.ch.ready)) this.o.metrics.agentsConnected.dec({ via: c.kind });
    c.ch.close();
  }

  private readonly waiting = new Set<string>();

  async waitReady(d: AgentDesktop, o: { timeoutMs: number; signal?: AbortSignal }): Promise<{ via: 'vdi' | 'qga' | 'grace'; ms: number }> {
    const t0 = this.now();
    const img = await this.o.imageAgent(d.image);
    // No agent: nothing to connect to, any replica waits the grace.
    if (img.agent === 'none') {
      await abortableSleep(img.bootGraceMs, o.signal);
      return { via: 'grace', ms: this.now() - t0 };
    }
    if (!this.local()) return this.remote('waitReady', [d, { timeoutMs: o.timeoutMs }], o.timeoutMs) as Promise<{ via: 'vdi' | 'qga' | 'grace'; ms: number }>;
    this.waiting.add(d.id);
    try {
      const c = await this.ensure(d, img.agent);
      if (c.kind === 'vdi') await c.ch.waitHello(o.timeoutMs, o.signal);
      else await c.ch.waitReady(o.timeoutMs, o.signal);
      return { via: c.kind, ms: this.now() - t0 };
    } finally {
      this.waiting.delete(d.id);
    }
  }

  async logon(d: AgentDesktop, req: { user: string; display: string; home?: HomeMount }, o: { timeoutMs: number }): Promise<{ home: string; mounted: boolean; ms: number }> {
    if (!this.local()) return this.remote('logon', [d, req, o], o.timeoutMs) as Promise<{ home: string; mounted: boolean; ms: number }>;
    const c = await this.ensure(d);
    if (c.kind !== 'vdi') return { home: '', mounted: false, ms: 0 };
    const t0 = this.now();
    await c.ch.waitHello(o.timeoutMs);
    const r = await c.ch.request('logon', { user: req.user, display: req.display, ...(req.home ? { home: req.home } : {}) }, Math.max(1, o.timeoutMs - (this.now() - t0)));
    if (!r.ok) throw new Error(`the guest could not log ${req.user} on: ${r.error ?? 'no reason given'}`);
    return {
      home: typeof r.body.home === 'string' ? r.body.home : '',
      mounted: r.body.mounted === true,
      ms: typeof r.body.ms === 'number' ? r.body.ms : this.now() - t0,
    };
  }

  async logoff(d: AgentDesktop, user: string, o: { timeoutMs: number }): Promise<boolean> {
    // Images without an agent (asked at every logoff): nothing to log off, no channel to try.
    if (!this.channels.has(d.id) && (await this.o.imageAgent(d.image)).agent !== 'vdi') return false;
    if (!this.local()) return (await this.remote('logoff', [d, user, o], o.timeoutMs)) !== false;
    const c = await this.ensure(d);
    if (c.kind !== 'vdi') return false;
    const r = await c.ch.request('logoff', { user }, o.timeoutMs);
    if (!r.ok) throw new Error(`the guest could not log ${user} off: ${r.error ?? 'no reason given'}`);
    return true;
  }

  async message(d: AgentDesktop, m: { title: string; text: string }): Promise<boolean> {
    if (!this.local()) return (await this.remote('message', [d, m], 5000).catch(() => false)) === true;
    try {
      const c = await this.ensure(d);
      if (c.kind !== 'vdi' || !c.ch.hello) return false;
      const r = await c.ch.request('message', { title: m.title.slice(0, 200), text: m.text.slice(0, 4000) }, 5000);
      return r.ok;
    } catch {
      return false;
    }
  }

  async status(desktopId: string, known?: AgentDesktop): Promise<AgentStatus | undefined> {
    // An image without an agent (asked at every desktop request) is answered here, on any replica.
    if (known && !this.channels.has(desktopId) && (await this.o.imageAgent(known.image)).agent === 'none') return { ...NO_AGENT_STATUS };
    if (!this.local()) return (await this.remote('status', [desktopId], 5000)) as AgentStatus | undefined;
    let c = this.channels.get(desktopId);
    if (!c) {
      const d = known ?? (await this.o.desktopOf(desktopId));
      if (!d) return undefined;
      if ((await this.o.imageAgent(d.image)).agent === 'none') return { ...NO_AGENT_STATUS };
      try {
        c = await this.ensure(d);
      } catch {
        return { connected: false, via: 'none' };
      }
    }
    if (c.kind === 'vdi') {
      const ch = c.ch;
      return {
        connected: !!ch.hello, via: 'vdi',
        ...(ch.hello ? { agent: ch.hello.agent, readyAt: ch.hello.at } : {}),
        ...(ch.lastPing?.user ? { user: ch.lastPing.user } : {}),
        ...(ch.lastPing?.idleSeconds !== undefined ? { idleSeconds: ch.lastPing.idleSeconds } : {}),
        ...(ch.lastSeenAt ? { lastSeenAt: ch.lastSeenAt } : {}),
      };
    }
    const ch = c.ch;
    let user: string | undefined;
    if (ch.ready) user = (await ch.users().catch(() => [] as string[]))[0];
    return {
      connected: !!ch.ready, via: 'qga', agent: 'qemu-guest-agent',
      ...(ch.ready ? { readyAt: ch.ready.at, ...(ch.ready.os ? { os: ch.ready.os } : {}) } : {}),
      ...(user ? { user } : {}),
      ...(ch.lastSeenAt ? { lastSeenAt: ch.lastSeenAt } : {}),
    };
  }

  /**
   * The guest's clock (qemu-guest-agent guest-get-time, ns since the epoch) and when the broker
   * asked (the mid-point of the round trip), for the doctor's clock check; undefined when the
   * guest runs our agent only (its protocol carries no time) or no channel answers.
   */
  async guestTime(desktopId: string, timeoutMs: number): Promise<{ ms: number; at: number; via: 'qga' } | undefined> {
    if (!this.local()) return (await this.remote('guestTime', [desktopId], timeoutMs)) as { ms: number; at: number; via: 'qga' } | undefined;
    const c = this.channels.get(desktopId);
    if (c?.kind !== 'qga' || !c.ch.ready) return undefined;
    const t0 = Date.now();
    const ns = await c.ch.command<number>('guest-get-time', undefined, timeoutMs);
    const at = Math.round((t0 + Date.now()) / 2);
    return typeof ns === 'number' ? { ms: Math.round(ns / 1e6), at, via: 'qga' } : undefined;
  }

  async exec(d: AgentDesktop, cmd: { path: string; args: string[] }, o: { allow?: boolean; timeoutMs: number }): Promise<{ exitcode: number; stdout: string; stderr: string }> {
    if (!(o.allow ?? this.o.qgaExecDefault ?? false)) throw new Error('Commands in this desktop\'s guest are not allowed by its pool\'s policy.');
    if (!this.local()) return this.remote('exec', [d, cmd, { ...o, allow: true }], o.timeoutMs) as Promise<{ exitcode: number; stdout: string; stderr: string }>;
    const c = await this.ensure(d);
    if (c.kind !== 'qga') throw new Error(`Desktop ${d.id} has no qemu-guest-agent.`);
    await c.ch.waitReady(o.timeoutMs);
    return c.ch.exec(cmd.path, cmd.args, o.timeoutMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [id, c] of this.channels) this.drop(id, c);
    await this.o.bus.close();
  }

  // ---- internals -------------------------------------------------------------------------

  private local(): boolean {
    if (this.holds) return this.holds();
    const l = this.o.leased;
    return !(typeof l === 'function' ? l() : l);
  }

  private remote(op: string, args: unknown[], timeoutMs: number): Promise<unknown> {
    return this.o.bus.call(op, args, timeoutMs);
  }

  /** Requests from other replicas (args as they were sent, JSON). */
  private runRemote(op: string, args: unknown[], timeoutMs: number): Promise<unknown> {
    const a = args as [never, never, never];
    switch (op) {
      case 'waitReady': return this.waitReady(a[0], { timeoutMs });
      case 'logon': return this.logon(a[0], a[1], { timeoutMs });
      case 'logoff': return this.logoff(a[0], a[1], { timeoutMs });
      case 'message': return this.message(a[0], a[1]);
      case 'status': return this.status(a[0]);
      case 'exec': return this.exec(a[0], a[1], { allow: true, timeoutMs });
      case 'guestTime': return this.guestTime(a[0], timeoutMs);
      default: return Promise.reject(new Error(`unknown agent operation ${op}`));
    }
  }

  private async ensure(d: AgentDesktop, kind?: AgentKind): Promise<Channel> {
    if (this.closed) throw new Error('agents closed');
    const have = this.channels.get(d.id);
    if (have && !have.ch.isClosed) return have;
    kind ??= (await this.o.imageAgent(d.image)).agent;
    if (kind === 'none') throw new Error(`Desktop ${d.id}'s image has no guest agent.`);
    const provider = this.o.providers.get(d.provider);
    if (!provider.agentChannels) throw new Error(`Provider ${d.provider} has no guest agent channels.`);
    const again = this.channels.get(d.id);
    if (again && !again.ch.isClosed) return again;
    const log = this.log.child({ desktop: d.id, via: kind });
    const channels = () => provider.agentChannels!(d.id);
    const connect = (which: 'vdi' | 'qga') => async (): Promise<Duplex> => {
      const f = (await channels())[which];
      if (!f) throw new Error(`Desktop ${d.id} has no ${which} port.`);
      return f();
    };
    let c: Channel;
    if (kind === 'vdi') {
      const secret = await this.o.secretOf(d.id);
      c = {
        kind: 'vdi',
        ch: new VdiChannel({
          desktop: d.id, secret, connect: connect('vdi'), log, now: this.now,
          drop: (reason: DropReason) => {
            this.o.metrics.agentMessagesDropped.inc({ reason });
            log.debug({ reason }, 'guest agent message dropped');
          },
          onHello: () => this.o.metrics.agentsConnected.inc({ via: 'vdi' }),
          onDown: () => this.o.metrics.agentsConnected.dec({ via: 'vdi' }),
          onEvent: (e) => this.events.emit('guest', { desktop: d.id, ...e } satisfies GuestEvent),
        }),
      };
    } else {
      c = {
        kind: 'qga',
        ch: new QgaChannel({
          desktop: d.id, connect: connect('qga'), log, now: this.now,
          onReady: () => this.o.metrics.agentsConnected.inc({ via: 'qga' }),
          onDown: () => this.o.metrics.agentsConnected.dec({ via: 'qga' }),
        }),
      };
    }
    const racing = this.channels.get(d.id);
    if (racing && !racing.ch.isClosed) return racing;
    this.channels.set(d.id, c);
    c.ch.start();
    return c;
  }
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
