// The OpenAPI document exactly as a broker serves it (built without Redis traffic).
import { createBrokerApp, VERSION } from '../server/app.ts';
import { loadConfig } from '../server/config/index.ts';
import { createLogger } from '../server/observability/index.ts';
import { createRedis } from '../server/store/index.ts';
import { buildOpenApi } from '../server/api/openapi.ts';

export async function openApiDocument(): Promise<Record<string, unknown>> {
  const config = loadConfig({ env: {}, overrides: { jobs: { enabled: false } } });
  const logger = createLogger('silent');
  const redis = createRedis({ url: config.redis.url, commandTimeoutMs: 1000, logger });
  const app = await createBrokerApp({ config, logger, redis });
  const doc = buildOpenApi(app.routes, VERSION);
  await app.close();
  redis.disconnect();
  return doc;
}
