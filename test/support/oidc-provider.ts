// A real OpenID provider for tests (`oidc-provider` in its own process, test/support/oidc-idp.ts),
// on a loopback port; stopped by pid, also when the test fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, stopChild } from './process.ts';
import { freePort } from './redis.ts';

export interface IdpAccount {
  password: string;
  name: string;
  email: string;
  groups: string[];
  /** Served nested, as `realm_access.roles` (Keycloak's shape). */
  roles: string[];
}

export interface TestIdpOptions {
  port?: number;
  clientId?: string;
  clientSecret?: string;
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
  accounts: Record<string, IdpAccount>;
  clockOffsetSeconds?: number;
  idTokenTtlSeconds?: number;
}

export interface TestIdp {
  issuer: string;
  port: number;
  clientId: string;
  clientSecret: string;
  pid: number;
  /** Everything the IdP printed. */
  output(): string;
  /** Resolves when the IdP has printed `IDP EVENT <name>` `count` times. */
  waitForEvent(name: string, count?: number, timeoutMs?: number): Promise<void>;
  events(name: string): number;
  stop(): Promise<void>;
}

export async function startTestIdp(o: TestIdpOptions): Promise<TestIdp> {
  const port = o.port ?? (await freePort());
  const clientId = o.clientId ?? 'vdi-broker';
  const clientSecret = o.clientSecret ?? 'test-client-secret-0123456789abcdef';
  const settings = { ...o, port, clientId, clientSecret, postLogoutRedirectUris: o.postLogoutRedirectUris ?? [] };
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/support/oidc-idp.ts'), JSON.stringify(settings)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', NODE_ENV: 'test' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Killed by pid when the test process exits without stopping it (a crash).
  const killOnExit = () => child.pid && child.exitCode === null && child.signalCode === null && process.kill(child.pid, 'SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const stop = () => stopChild(child);
  const issuer = `http://127.0.0.1:${port}`;
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`test IdP did not start within 30 s: ${out}`)), 30_000);
      const check = () => {
        if (out.includes(`IDP LISTENING ${issuer}`)) {
          clearTimeout(t);
          resolve();
        }
      };
      child.stdout!.on('data', check);
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`test IdP exited with ${code}: ${out}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const events = (name: string) => out.split('\n').filter((l) => l.startsWith(`IDP EVENT ${name}`)).length;
  return {
    issuer,
    port,
    clientId,
    clientSecret,
    pid: child.pid!,
    output: () => out,
    events,
    async waitForEvent(name, count = 1, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (events(name) < count) {
        if (Date.now() > deadline) throw new Error(`the test IdP did not report ${name} x${count} within ${timeoutMs} ms: ${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop,
  };
}
