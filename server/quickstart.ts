// The quick start: a working broker on one machine from its embedded defaults.
// Starts a local redis-server when none answers (and says what to install if there is none),
// creates the first admin, starts the broker and prints where to log in.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { configOrExit, runBroker, createLogger } from './runtime.ts';
import { createRedis, connectRedis } from './store/index.ts';
import { createBrokerApp } from './app.ts';

const DATA = resolve(process.env.VDI_QUICKSTART_DATA ?? 'data');
const config = configOrExit(process.argv.slice(2));
const logger = createLogger(config.logging.level);

async function ensureRedis(): Promise<ChildProcess | null> {
  const probe = createRedis({ url: config.redis.url, password: config.redis.password, commandTimeoutMs: 2000, logger: createLogger('silent') });
  const up = await connectRedis(probe, 1500);
  probe.disconnect();
  if (up) return null;
  const u = new URL(config.redis.url);
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(u.hostname);
  if (!config.redis.autoStart || !local) {
    process.stderr.write(`redis is not reachable at ${config.redis.url}; start it or point VDI_REDIS_URL at one.\n`);
    process.exit(3);
  }
  if (spawnSync('redis-server', ['--version']).error) {
    process.stderr.write('redis is not running and redis-server is not installed. Install it with:\n  apt-get install -y redis-server\nthen run this command again.\n');
    process.exit(3);
  }
  const dir = join(DATA, 'redis');
  mkdirSync(dir, { recursive: true });
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', u.port || '6379', '--dir', dir, '--appendonly', 'yes', '--save', ''], { stdio: 'ignore' });
  const client = createRedis({ url: config.redis.url, password: config.redis.password, commandTimeoutMs: 2000, logger: createLogger('silent') });
  const ok = await connectRedis(client, 10_000);
  client.disconnect();
  if (!ok) {
    child.kill();
    process.stderr.write('started redis-server but it did not answer within 10 s\n');
    process.exit(3);
  }
  logger.info({ dir, pid: child.pid }, 'started a local redis-server (AOF on)');
  return child;
}

const redisChild = await ensureRedis();
const stopRedis = async () => {
  if (!redisChild) return;
  redisChild.kill('SIGTERM');
  await new Promise((r) => redisChild.once('exit', r));
};

// First admin: created once; its password is kept in data/ (mode 0600) so a rerun can show it.
const pwFile = join(DATA, 'admin-password');
const setup = await createBrokerApp({ config: { ...config, jobs: { ...config.jobs, enabled: false } }, logger: createLogger('warn') });
let adminPassword: string | null = null;
if ((await setup.store.users.count()) === 0) {
  adminPassword = randomBytes(12).toString('base64url');
  await setup.identity.createUser({ principal: { kind: 'user', id: 'quickstart', role: 'admin', groups: [] }, address: 'local' }, { id: 'admin', role: 'admin', password: adminPassword, displayName: 'Administrator' });
  mkdirSync(DATA, { recursive: true });
  writeFileSync(pwFile, adminPassword + '\n', { mode: 0o600 });
} else if (existsSync(pwFile)) {
  adminPassword = readFileSync(pwFile, 'utf8').trim();
}
await setup.close();


const running = await runBroker(config, logger, 'configured', stopRedis);
const lines = [
  '',
  '  vdi-broker is running',
  `  Log in at:  ${running.url}`,
  adminPassword ? `  Admin:      admin / ${adminPassword}` : '  Admin:      (an account exists already; reset with: npm run cli -- user passwd admin --password-stdin)',
  `  API docs:   ${running.url}api/v1/openapi.json`,
  '  Stop with Ctrl-C.',
  '',
];
process.stdout.write(lines.join('\n') + '\n');
