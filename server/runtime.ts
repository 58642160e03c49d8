// Shared start-up for the broker process (main.ts) and the quick start (quickstart.ts).
import type { Server, ServerResponse } from 'node:http';
import { loadConfig, ConfigError, type Config } from './config/index.ts';
import { createLogger, type Logger } from './observability/index.ts';
import { createBrokerApp, createHttpServer, type BrokerApp } from './app.ts';
import type { Provider } from './providers/index.ts';
import { attachTunnel, type AttachedTunnel } from './tunnel/index.ts';

/** Loads config or exits with the one-line reason. */
export function configOrExit(argv: string[]): Config {
  const i = argv.indexOf('--config');
  try {
    return loadConfig(i >= 0 && argv[i + 1] ? { file: argv[i + 1]! } : {});
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

export function publicUrl(config: Config, server: Server): string {
  if (config.server.publicUrl) return config.server.publicUrl;
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.server.port;
  const host = ['0.0.0.0', '::'].includes(config.server.host) ? '127.0.0.1' : config.server.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
}

const QUIET_MS = 1000;

/**
 * Requests in flight on the server. drained(): ends the event streams (they would run for
 * minutes; EventSource reconnects elsewhere) and resolves once no request is left.
 */
function trackRequests(server: Server): { drained(): Promise<void>; left(maxMs: number): Promise<void> } {
  const open = new Set<ServerResponse>();
  let idle: (() => void) | undefined;
  /** When the last request other than a health check came, and when a /readyz was last answered 503. */
  let lastRequest = 0;
  let lastUnready = 0;
  server.on('request', (req, res: ServerResponse) => {
    if (req.url?.startsWith('/readyz')) res.once('finish', () => void (res.statusCode === 503 && (lastUnready = Date.now())));
    else lastRequest = Date.now();
    open.add(res);
    res.once('close', () => {
      open.delete(res);
      if (open.size === 0) idle?.();
    });
  });
  return {
    /**
     * Behind a load balancer (/readyz answering 503 since leave()): resolves once the balancer has
     * seen the 503 and no request came for a second after it (it moved the traffic away), or
     * after `maxMs`.
     */
    async left(maxMs) {
      const since = Date.now();
      const until = since + maxMs;
      while (Date.now() < until) {
        if (lastUnready > since && Date.now() - Math.max(lastRequest, since) >= QUIET_MS) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    drained() {
      for (const res of open) if (String(res.getHeader('content-type') ?? '').startsWith('text/event-stream')) res.end();
      return open.size === 0 ? Promise.resolve() : new Promise<void>((r) => (idle = r));
    },
  };
}

export interface RunningBroker {
  broker: BrokerApp;
  server: Server;
  tunnel: AttachedTunnel;
  url: string;
  stop(): Promise<void>;
}

/** Builds the broker, listens, starts the reconcilers and stops gracefully on SIGTERM/SIGINT. */
export async function runBroker(config: Config, logger: Logger, providers: Provider[] | 'configured' = 'configured', onStop?: () => Promise<void>): Promise<RunningBroker> {
  const broker = await createBrokerApp({ config, logger, providers });
  const server = createHttpServer(broker);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.server.port, config.server.host, () => resolve());
  });
  const tunnel = await attachTunnel({ server, store: broker.store, broker: broker.broker, providers: broker.providers, config, logger, metrics: broker.metrics, logins: (req) => broker.auth.loginOfUpgrade(req), trustProxy: broker.app.get('trust proxy fn') });
  broker.startJobs();
  const url = publicUrl(config, server);
  logger.info({ url }, 'vdi-broker listening');

  const inFlight = trackRequests(server);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down');
      // Not ready from the first signal on (/readyz 503), so a load balancer stops sending traffic.
      // The listener stays open through the grace: health checks get that answer instead of a
      // refused connection, and requests already in flight are served to their end.
      // Behind a load balancer (server.drainSeconds): first only not ready, still serving, until
      // the balancer has taken this replica out; so no request it still sends here is refused.
      if (config.server.drainSeconds > 0) {
        broker.leave();
        await inFlight.left(config.server.drainSeconds * 1000);
      }
      broker.drain();
      // Open tunnels are WebSockets the HTTP server would wait for: end them first, cleanly.
      await tunnel.close();
      const grace = new Promise<void>((r) => setTimeout(r, config.server.shutdownGraceSeconds * 1000).unref());
      await Promise.race([inFlight.drained(), grace]);
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
      await broker.close();
      await onStop?.();
      logger.info('stopped');
    })());
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      stop().then(
        () => process.exit(0),
        (err) => {
          logger.error({ err }, 'error while stopping');
          process.exit(1);
        },
      );
    });
  }
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled promise rejection'));
  return { broker, server, tunnel, url, stop };
}

export { createLogger };
