// The quick start: a working broker on one machine from its embedded defaults.
// Starts a local redis-server when none answers (and says what to install if there is none),
// creates the first admin, starts the broker and prints where to log in.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configOrExit, runBroker, createLogger } from './runtime.ts';
import { createRedis, connectRedis, redisTarget } from './store/index.ts';
import { createBrokerApp } from './app.ts';
import type { Actor } from './broker/index.ts';
import { shareSmb } from './config/schema.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DATA = resolve(process.env.VDI_QUICKSTART_DATA ?? 'data');
const config = configOrExit(process.argv.slice(2));
const logger = createLogger(config.logging.level);

// Users' folders reach the desktops over SMB from a broker-run smbd (docs/shares.md), unless
// the configuration says otherwise for the first share or Samba is not installed.
const firstShare = config.shares.list[0];
if (firstShare && !firstShare.smb) {
  if (existsSync('/usr/sbin/smbd') && ['/usr/lib/x86_64-linux-gnu/libnss_wrapper.so', '/usr/lib/aarch64-linux-gnu/libnss_wrapper.so'].some((f) => existsSync(f))) {
    firstShare.smb = shareSmb.parse({ managed: true, dir: join(DATA, 'samba') });
  } else {
    logger.warn('samba or libnss-wrapper is not installed: desktops start without the users\' folders (apt-get install -y samba libnss-wrapper)');
  }
}

async function ensureRedis(): Promise<ChildProcess | null> {
  const probe = createRedis({ ...redisTarget(config.redis), commandTimeoutMs: 2000, logger: createLogger('silent') });
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
  const client = createRedis({ ...redisTarget(config.redis), commandTimeoutMs: 2000, logger: createLogger('silent') });
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

// First admin, demo image, demo users and a demo pool: created once. Passwords are kept in
// data/ (mode 0600) so a rerun can show them again.
const pwFile = join(DATA, 'admin-password');
const demoPwFile = join(DATA, 'demo-password');
const setup = await createBrokerApp({ config: { ...config, jobs: { ...config.jobs, enabled: false } }, logger: createLogger('warn'), providers: 'configured' });
const quick: Actor = { principal: { kind: 'user', id: 'quickstart', role: 'admin', groups: [] }, address: 'local' };
mkdirSync(DATA, { recursive: true });
let adminPassword: string | null = null;
if ((await setup.store.users.count()) === 0) {
  adminPassword = randomBytes(12).toString('base64url');
  await setup.identity.createUser(quick, { id: 'admin', role: 'admin', password: adminPassword, displayName: 'Administrator' });
  writeFileSync(pwFile, adminPassword + '\n', { mode: 0o600 });
} else if (existsSync(pwFile)) {
  adminPassword = readFileSync(pwFile, 'utf8').trim();
}

// The demo golden image: built from Debian packages when missing, and again when the build
// script's IMAGE_VERSION (its guest: agent, hooks) differs from the built one; each build is
// registered and published as the next version (running desktops keep their base; the image
// rollout rebuilds idle ones at once, busy ones after logoff).
const builtVersion = (dir: string): number | undefined => {
  try {
    const v = (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { version?: unknown }).version;
    return typeof v === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
};
const scriptVersion = Number(/^IMAGE_VERSION=(\d+)$/m.exec(readFileSync(join(ROOT, 'scripts/image/build-demo-image.sh'), 'utf8'))?.[1] ?? 1);
// Version 1 keeps its old place (demo/1); later guests go to demo/v<version>.
const legacyDir = resolve(config.images.dir, 'demo', '1');
const imageDir = builtVersion(legacyDir) === scriptVersion || (scriptVersion === 1 && existsSync(join(legacyDir, 'disk.qcow2')))
  ? legacyDir
  : resolve(config.images.dir, 'demo', `v${scriptVersion}`);
if (!existsSync(join(imageDir, 'disk.qcow2')) || (imageDir !== legacyDir && builtVersion(imageDir) !== scriptVersion)) {
  logger.info({ dir: imageDir }, 'building the demo golden image');
  const b = spawnSync('bash', [join(ROOT, 'scripts/image/build-demo-image.sh'), imageDir], { stdio: 'inherit' });
  if (b.status !== 0) {
    process.stderr.write('building the demo image failed (it needs: apt-get install -y linux-image-amd64 busybox-static e2fsprogs cpio kmod qemu-utils)\n');
    process.exit(4);
  }
}
if (!(await setup.store.images.get('demo'))) {
  await setup.broker.images.create(quick, 'demo', 'Demo desktop (Debian kernel + busybox)');
  await setup.broker.images.addVersion(quick, 'demo', { path: imageDir, publish: true });
} else {
  const demo = await setup.broker.images.get('demo');
  const current = demo.versions.find((v) => v.version === demo.current);
  if (current?.path !== imageDir) {
    logger.info({ dir: imageDir, version: scriptVersion }, 'publishing the rebuilt demo golden image');
    await setup.broker.images.addVersion(quick, 'demo', { path: imageDir, publish: true });
  }
}
const demoProvider = config.providers[0]?.name;
let demoPassword: string | null = existsSync(demoPwFile) ? readFileSync(demoPwFile, 'utf8').trim() : null;
if (demoProvider && !(await setup.store.pools.get('demo'))) {
  demoPassword ??= randomBytes(9).toString('base64url');
  writeFileSync(demoPwFile, demoPassword + '\n', { mode: 0o600 });
  for (const id of ['alice', 'bob']) {
    if (!(await setup.store.users.get(id))) await setup.identity.createUser(quick, { id, role: 'user', password: demoPassword, displayName: id[0]!.toUpperCase() + id.slice(1) });
  }
  if (!(await setup.store.users.getGroup('demo-users'))) await setup.identity.createGroup(quick, { name: 'demo-users', displayName: 'Demo users', members: ['alice', 'bob'] });
  await setup.broker.pools.create(
    {
      name: 'demo', displayName: 'Demo desktops', description: 'Non-persistent demo desktops on the embedded QEMU hypervisor',
      assignment: 'floating', persistence: 'refresh', size: { min: 0, max: 4, spare: 2 }, naming: 'demo-{n:02}',
      resources: { vcpu: 1, memoryMiB: 256, diskGiB: 1, network: 'default', graphics: 'vga' },
      image: 'demo', provider: demoProvider, clone: 'linked', entitlements: { users: [], groups: ['demo-users'] },
      sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 900, maxSessionSeconds: 0 }, enabled: true, maintenance: false,
    },
    quick,
  );
}
await setup.close();

const running = await runBroker(config, logger, 'configured', stopRedis);
const lines = [
  '',
  '  vdi-broker is running',
  `  Log in at:  ${running.url}`,
  adminPassword ? `  Admin:      admin / ${adminPassword}` : '  Admin:      (an account exists already; reset with: npm run cli -- user passwd admin --password-stdin)',
  demoPassword ? `  Demo users: alice, bob / ${demoPassword}  (pool "demo": 2 spare desktops booting, ready within a minute)` : '',
  `  API docs:   ${running.url}api/v1/openapi.json`,
  '  Stop with Ctrl-C.',
  '',
];
process.stdout.write(lines.join('\n') + '\n');
