// Shared start-up for the broker process (main.ts) and the quick start (quickstart.ts).
import { createServer, type Server } from 'node:http';
import { loadConfig, ConfigError, type Config } from './config/index.ts';
import { createLogger, type Logger } from './observability/index.ts';
import { createBrokerApp, type BrokerApp } from './app.ts';
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
  const server = createServer(broker.app);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.server.port, config.server.host, () => resolve());
  });
  const tunnel = await attachTunnel({ server, store: broker.store, broker: broker.broker, providers: broker.providers, config, logger, metrics: broker.metrics });
  broker.startJobs();
  const url = publicUrl(config, server);
  logger.info({ url }, 'vdi-broker listening');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down');
      // Open tunnels are WebSockets the HTTP server would wait for: end them first, cleanly.
      await tunnel.close();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      const grace = new Promise<void>((r) => setTimeout(r, config.server.shutdownGraceSeconds * 1000).unref());
      await Promise.race([closed, grace]);
      server.closeAllConnections();
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
