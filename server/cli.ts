// Administration from the shell, straight against Redis (no HTTP, no login needed):
//   npm run cli -- user add alice --role admin --password-stdin
import { Command } from 'commander';
import { userInfo } from 'node:os';
import { configOrExit } from './runtime.ts';
import { createLogger } from './observability/index.ts';
import { Store, createRedis, connectRedis, redisTarget } from './store/index.ts';
import { ProviderRegistry } from './providers/index.ts';
import { Metrics } from './observability/index.ts';
import { Passwords, LoginThrottle, IdentityService } from './auth/index.ts';
import { BrokerError } from './errors.ts';
import type { ZodType } from 'zod';
import { zodIssueToError } from './api/route.ts';
import { newUserBody, userPatchBody, newGroupBody, groupPatchBody, newApiKeyBody } from './api/schemas.ts';
import { ROLES, Broker, type Actor, type Role } from './broker/index.ts';
import { readFileSync } from 'node:fs';
import { createProviders } from './providers/configured.ts';
import { MachineService, machineSpecSchema } from './providers/manual/index.ts';
import { runDoctor, formatReport, doctorContext } from './doctor/index.ts';
import { writeBackup, restoreBackup, BackupError } from './store/backup.ts';
import { VERSION } from './app.ts';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(): Promise<void> {
  const config = configOrExit(process.argv);
  const logger = createLogger('warn');
  const redis = createRedis({ ...redisTarget(config.redis), commandTimeoutMs: config.redis.commandTimeoutMs, logger });
  if (!(await connectRedis(redis, 5000))) {
    process.stderr.write(`cannot reach redis at ${config.redis.url}\n`);
    process.exit(3);
  }
  const store = new Store(redis, {
    keyPrefix: config.redis.keyPrefix,
    macs: { prefix: config.desktops.macPrefix, size: config.desktops.macPoolSize },
    deletedRetentionSeconds: config.desktops.deletedRetentionDays * 86400,
    auditMaxEntries: config.audit.maxEntries,
  });
  const broker = new Broker({ store, providers: new ProviderRegistry(), logger, metrics: new Metrics({ defaultMetrics: false }) });
  const identity = new IdentityService(
    store,
    new Passwords({ memoryKiB: config.auth.argon2MemoryKib, timeCost: config.auth.argon2TimeCost, parallelism: config.auth.argon2Parallelism }),
    new LoginThrottle(redis, { keyPrefix: store.keys.rateLimitPrefix, ...config.auth }),
    broker.audit,
    config.auth.passwordMinLength,
    broker,
  );
  const actor: Actor = { principal: { kind: 'user', id: `cli:${userInfo().username}`, role: 'admin', groups: [] }, address: 'cli' };
  const out = (v: unknown): void => void process.stdout.write(JSON.stringify(v, null, 2) + "\n");
  const role = (r: string): Role => {
    if (!(ROLES as readonly string[]).includes(r)) throw new BrokerError('validation_failed', `role must be one of ${ROLES.join(', ')}`, { field: 'role' });
    return r as Role;
  };
  const password = async (o: { password?: string; passwordStdin?: boolean }) => {
    if (o.passwordStdin) return readStdin();
    if (o.password) return o.password;
    throw new BrokerError('validation_failed', 'give --password-stdin (preferred) or --password', { field: 'password' });
  };

  // The same schemas as the API: the CLI stores nothing the API would refuse.
  const valid = <T>(schema: ZodType<T>, input: unknown): T => {
    const r = schema.safeParse(input);
    if (!r.success) throw zodIssueToError(r.error, 'body');
    return r.data;
  };

  const program = new Command('vdi-broker').option('--config <file>', 'configuration file').exitOverride();
  const user = program.command('user').description('local users');
  user.command('add <id>').option('--role <role>', 'user, helpdesk or admin', 'user').option('--display-name <name>').option('--group <group...>', 'groups', [])
    .option('--password <pw>').option('--password-stdin', 'read the password from standard input')
    .action(async (id: string, o) => out(await identity.createUser(actor, valid(newUserBody, { id, role: role(o.role), password: await password(o), displayName: o.displayName, groups: o.group }))));
  user.command('list').action(async () => out(await identity.listUsers()));
  user.command('passwd <id>').option('--password <pw>').option('--password-stdin').action(async (id: string, o) => out(await identity.updateUser(actor, id, valid(userPatchBody, { password: await password(o) }))));
  user.command('role <id> <role>').action(async (id: string, r: string) => out(await identity.updateUser(actor, id, { role: role(r) })));
  user.command('disable <id>').action(async (id: string) => out(await identity.updateUser(actor, id, { disabled: true })));
  user.command('enable <id>').action(async (id: string) => out(await identity.updateUser(actor, id, { disabled: false })));
  user.command('unlock <id>').description('clear login lock, waits and per-address blocks').action(async (id: string) => out(await identity.unlockUser(actor, id.toLowerCase())));
  user.command('del <id>').action(async (id: string) => identity.deleteUser(actor, id));
  const group = program.command('group').description('groups of users');
  group.command('add <name>').option('--member <user...>', 'members', []).action(async (name: string, o) => out(await identity.createGroup(actor, valid(newGroupBody, { name, members: o.member }))));
  group.command('list').action(async () => out(await identity.listGroups()));
  group.command('members <name> [users...]').action(async (name: string, users: string[]) => out(await identity.updateGroup(actor, name, valid(groupPatchBody, { members: users }))));
  group.command('del <name>').action(async (name: string) => identity.deleteGroup(actor, name));
  const key = program.command('apikey').description('API keys for automation');
  key.command('create <name>').option('--role <role>', 'role of the key', 'helpdesk').action(async (name: string, o) => out(await identity.createApiKey(actor, valid(newApiKeyBody, { name, role: role(o.role) }))));
  key.command('list').action(async () => out(await identity.listApiKeys()));
  key.command('revoke <id>').action(async (id: string) => identity.revokeApiKey(actor, id));
  // Machines of manual pools: only the manual drivers are built (they seal credentials with the tunnel secret).
  const machineService = () => {
    const manual = { ...config, providers: config.providers.filter((p) => p.kind === 'manual') };
    const registry = new ProviderRegistry(createProviders(manual, logger, async () => '', store));
    return new MachineService(store, registry, broker.audit);
  };
  const machine = program.command('machine').description('existing machines of manual pools (labs, RDS hosts)');
  machine.command('add <name>').requiredOption('--pool <pool>').requiredOption('--address <host>').option('--protocol <p>', 'vnc or rdp', 'vnc').option('--port <n>')
    .option('--username <u>').option('--password <pw>').option('--password-stdin', 'read the console password from standard input')
    .option('--domain <d>').option('--security <mode>', 'RDP: any, nla, nla-ext, tls, vmconnect, rdp').option('--ignore-cert', 'RDP: accept any certificate').option('--mac <mac>', 'Wake-on-LAN MAC').option('--agent', 'runs the guest agent')
    .action(async (name: string, o) => {
      const pw = o.passwordStdin || o.password ? await password(o) : undefined;
      const spec = valid(machineSpecSchema, {
        name, pool: o.pool, protocol: o.protocol, address: o.address, ...(o.port ? { port: Number(o.port) } : {}), ...(o.username ? { username: o.username } : {}), ...(pw ? { password: pw } : {}),
        ...(o.domain ? { domain: o.domain } : {}), ...(o.security ? { security: o.security } : {}), ...(o.ignoreCert ? { ignoreCert: true } : {}), ...(o.mac ? { mac: o.mac } : {}), ...(o.agent ? { agent: true } : {}),
      });
      out(await machineService().add(actor, spec));
    });
  machine.command('list').option('--pool <pool>').action(async (o) => out(await machineService().list(o.pool ? { pool: o.pool } : {})));
  machine.command('del <name>').description('remove from its pool (the machine itself is not touched)').action(async (name: string) => machineService().remove(actor, name));
  machine.command('import <csv>').description('add machines from a CSV file ("-" = standard input); header: name,pool,protocol,address[,port,username,password,domain,security,ignoreCert,mac,agent]')
    .action(async (file: string) => {
      const r = await machineService().importCsv(actor, file === '-' ? await readStdin() : readFileSync(file, 'utf8'));
      out(r);
      if (r.failed.length) process.exitCode = 1;
    });

  // The doctor (docs/doctor.md): exit 1 when a check fails. Guest clocks need the running broker's
  // agents (GET /api/v1/doctor); QEMU consoles are read from the desktops' state, never touched.
  program.command('doctor').description('check KVM, clocks, identity collisions, reachability, resources and access; exit 1 on a failure')
    .option('--json', 'the report as JSON (docs/doctor.md)').option('--only <families...>', 'only these families: kvm clock identity reach resources access')
    .option('--timeout <ms>', 'time limit of each probe', '2000')
    .action(async (o) => {
      const providers = new ProviderRegistry(createProviders(config, logger, async () => '', store));
      try {
        const report = await runDoctor(doctorContext({ config, store, providers, mode: 'cli', timeoutMs: Number(o.timeout) || 2000 }), { only: o.only });
        process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, process.stdout.isTTY));
        if (report.summary.fail > 0) process.exitCode = 1;
      } finally {
        await providers.close();
      }
    });
  // Backup and restore of the broker's Redis keys (docs/backup.md). Values are never printed.
  const bigRedis = () => createRedis({ ...redisTarget(config.redis), commandTimeoutMs: 300_000, logger });
  const withBig = async <T>(fn: (r: ReturnType<typeof createRedis>) => Promise<T>): Promise<T> => {
    const r = bigRedis();
    try {
      if (!(await connectRedis(r, 5000))) throw new BackupError(`cannot reach redis at ${config.redis.url}`);
      return await fn(r);
    } finally {
      r.disconnect();
    }
  };
  program.command('backup').description('write a consistent snapshot of every key under redis.keyPrefix to a file (0600; it holds secrets)')
    .requiredOption('--out <file>', 'the backup file')
    .action(async (o) => out(await withBig((r) => writeBackup(r, config.redis.keyPrefix, VERSION, o.out))));
  program.command('restore').description('load a backup into an EMPTY Redis (redis.url) under redis.keyPrefix')
    .requiredOption('--in <file>', 'the backup file').option('--force', 'the Redis is not empty: delete the keys under the prefix and replace them')
    .action(async (o) => out(await withBig((r) => restoreBackup(r, o.in, config.redis.keyPrefix, { force: !!o.force }))));

  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof BrokerError) process.stderr.write(`error: ${err.code}: ${err.message}\n`);
    else if (err instanceof BackupError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = 1;
    }
    else if ((err as { code?: string }).code?.startsWith('commander.')) {
      if (!['commander.helpDisplayed', 'commander.help', 'commander.version'].includes((err as { code: string }).code)) process.exitCode = 2;
    } else throw err;
    process.exitCode ||= err instanceof BrokerError ? 1 : 0;
  } finally {
    redis.disconnect();
  }
}

await main();
