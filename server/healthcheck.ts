// Container health check (`node dist/server/healthcheck.js`): GET /healthz on the address and
// port of the effective configuration (config file + VDI_* variables, as the broker reads them),
// so a broker moved to another port is not reported unhealthy. Exit 0 healthy, 1 not.
import { loadConfig, ConfigError } from './config/index.ts';

const argv = process.argv.slice(2);
const i = argv.indexOf('--config');
try {
  const config = loadConfig(i >= 0 && argv[i + 1] ? { file: argv[i + 1]! } : {});
  const h = config.server.host;
  const host = ['0.0.0.0', '::', ''].includes(h) ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
  const res = await fetch(`http://${host}:${config.server.port}/healthz`, { signal: AbortSignal.timeout(2500) });
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
  process.exit(1);
}
