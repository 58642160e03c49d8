// What the portal and helpdesk browser tests share: a real X desktop (Xvnc) whose console every
// desktop of the broker's pool streams, a broker with reconcilers on, its users and one pool,
// and one Chromium; each test opens its own contexts (one per person) and they close with it.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';
import { startTestBroker, PASSWORD, type TestBroker } from '../../support/harness.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../../gateway/support/xvnc.ts';
import { launchChromium, webClientMissing, type LaunchedChromium } from '../../support/chromium.ts';
import { SYSTEM_ACTOR, type PoolSpec, type Role } from '../../../server/broker/index.ts';

export const ARTIFACTS = process.env.VDI_TEST_ARTIFACTS || '/tmp/vdi-artifacts';

/** Why the desk cannot be set up here, or null. */
export function deskMissing(): string | null {
  return webClientMissing() ?? (hasXvnc() ? null : 'Xvnc/xsetroot/vncpasswd not installed');
}

/** Logs in through the web client's form at `base` (optionally without navigating there first). */
export async function formLogin(p: Page, base: string, user: string, o: { password?: string; goto?: boolean } = {}): Promise<void> {
  if (o.goto !== false) await p.goto(base + '/');
  await p.locator('input[name=username]').fill(user);
  await p.locator('input[name=password]').fill(o.password ?? PASSWORD);
  await p.getByRole('button', { name: 'Log in' }).click();
}

export interface Desk {
  xvnc: Xvnc;
  tb: TestBroker;
  chrome: LaunchedChromium<Browser>;
  /** A new browser context (a new person) and its page. */
  newPage(viewport?: { width: number; height: number }, options?: BrowserContextOptions): Promise<Page>;
  /** Logs in through the login form; waits until the page shows the logged-in header unless told not to. */
  uiLogin(p: Page, user: string, o?: { password?: string; goto?: boolean; waitLoggedIn?: boolean }): Promise<void>;
  /** A screenshot into the artifacts folder, named `<prefix>-<name>.png`. */
  shot(p: Page, name: string): Promise<Buffer>;
  close(): Promise<void>;
}

export async function startDesk(o: {
  name: string;
  users: Array<[string, Role?]>;
  pool: Partial<PoolSpec> & { name: string };
  xvnc?: { width: number; height: number };
}): Promise<Desk> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const xvnc = await startXvnc(o.xvnc ?? { width: 640, height: 400 });
  const contexts: BrowserContext[] = [];
  let tb: TestBroker | undefined;
  let chrome: LaunchedChromium<Browser> | undefined;
  const close = async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await chrome?.stop();
    await tb?.close();
    await xvnc.stop();
  };
  try {
    tb = await startTestBroker({ name: o.name, config: { jobs: { enabled: true } } });
    tb.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port };
    for (const [id, role] of o.users) await tb.addUser(id, role ?? 'user');
    await tb.app.broker.pools.create(tb.pool(o.pool), SYSTEM_ACTOR);
    tb.app.startJobs();
    chrome = await launchChromium<Browser>();
  } catch (err) {
    await close();
    throw err;
  }
  const b = tb;
  const c = chrome;
  return {
    xvnc, tb: b, chrome: c, close,
    async newPage(viewport = { width: 1100, height: 720 }, options = {}) {
      const ctx = await c.browser.newContext({ ...options, viewport });
      contexts.push(ctx);
      return ctx.newPage();
    },
    async uiLogin(p, user, lo = {}) {
      await formLogin(p, b.url, user, lo);
      if (lo.waitLoggedIn !== false) await p.getByRole('button', { name: 'Log out' }).waitFor();
    },
    shot: (p, name) => p.screenshot({ path: join(ARTIFACTS, `${o.name}-${name}.png`) }),
  };
}
