import type { Config } from '../config/index.ts';
import type { Logger, Metrics } from '../observability/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import { AgentBus, type Store, type ImageVersion } from '../store/index.ts';
import { imageAgentOf } from '../broker/image.service.ts';
import { AgentHub, type AgentDesktop, type ImageAgent } from './agents.ts';
import { agentSecret } from './protocol.ts';

/**
 * Desktop states whose VM runs or is being started: the agents reconciler keeps a channel to
 * each (the one that saw the hello of a desktop being built stays once it is ready).
 */
const RUNNING_STATES = ['provisioning', 'refreshing', 'ready', 'assigned', 'in_use'] as const;
/** How long an image version's guest agent kind is kept (see imageAgent below). */
export const IMAGE_AGENT_TTL_MS = 5_000;

/**
 * The guest agents of one broker replica (app.ts): the hub, the per-desktop secret, how an
 * image's agent is found, and the reconcile pass that keeps a channel per running desktop
 * (run by the job runner under the `agents` lease).
 */
export function createAgents(d: {
  config: Config;
  store: Store;
  providers: ProviderRegistry;
  resolveImage: (ref: string) => Promise<ImageVersion>;
  logger: Logger;
  metrics: Metrics;
  /** Whether a job runner decides who holds the channels (the `agents` lease); default: config.jobs.enabled. */
  leased?: () => boolean;
  now?: () => number;
}): { agents: AgentHub; secretOf: (id: string) => Promise<string>; sync: (holdsLease: () => boolean) => Promise<void> } {
  const { config, store } = d;
  let tunnelSecret: Promise<string> | undefined;
  const secretOf = async (id: string): Promise<string> => {
    tunnelSecret ??= store.tickets.secret(config.tunnel.secret).catch((e: unknown) => {
      tunnelSecret = undefined;
      throw e;
    });
    return agentSecret(await tunnelSecret, id);
  };
  const readImageAgent = async (ref: string): Promise<ImageAgent> => {
    const fallback: ImageAgent = { agent: config.agent.defaultImageAgent, bootGraceMs: config.agent.defaultBootGraceMs };
    let v: ImageVersion;
    try {
      v = await d.resolveImage(ref);
    } catch {
      return fallback;
    }
    // Versions registered before images carried their agent: read the manifest once more.
    const m = v.agent ? v : imageAgentOf(v.path);
    return { agent: m.agent ?? fallback.agent, bootGraceMs: m.bootGraceMs ?? fallback.bootGraceMs };
  };
  // Asked on every desktop request and logoff (is there an agent to log the user on/off?): an
  // image version does not change once registered, so its answer is kept a few seconds (a
  // deleted and re-registered image is seen after at most IMAGE_AGENT_TTL_MS).
  const imageAgents = new Map<string, { until: number; agent: Promise<ImageAgent> }>();
  const imageAgent = (ref: string): Promise<ImageAgent> => {
    const t = Date.now();
    const hit = imageAgents.get(ref);
    if (hit && hit.until > t) return hit.agent;
    if (imageAgents.size >= 10_000) imageAgents.clear();
    const agent = readImageAgent(ref);
    imageAgents.set(ref, { until: t + IMAGE_AGENT_TTL_MS, agent });
    return agent;
  };
  const toAgentDesktop = (x: { id: string; provider: string; image: string }): AgentDesktop => ({ id: x.id, provider: x.provider, image: x.image });
  const agents = new AgentHub({
    providers: d.providers,
    bus: new AgentBus(store.redis, store.keys),
    logger: d.logger,
    metrics: d.metrics,
    secretOf,
    imageAgent,
    desktopOf: async (id) => {
      const x = await store.desktops.get(id);
      return x && x.state !== 'deleted' ? toAgentDesktop(x) : undefined;
    },
    readyTimeoutMs: config.agent.readyTimeoutMs,
    leased: d.leased ?? config.jobs.enabled,
    qgaExecDefault: config.agent.qgaExec,
    ...(d.now ? { now: d.now } : {}),
  });
  const sync = async (holdsLease: () => boolean): Promise<void> => {
    const running: AgentDesktop[] = [];
    for (const pool of await store.pools.list()) {
      for (const state of RUNNING_STATES) {
        const ids = await store.desktops.idsInState(pool.name, state);
        if (!ids.length) continue;
        for (const x of await store.desktops.getMany(ids)) {
          if (x && d.providers.has(x.provider) && d.providers.get(x.provider).agentChannels) running.push(toAgentDesktop(x));
        }
      }
    }
    await agents.sync(running, holdsLease);
  };
  return { agents, secretOf, sync };
}
