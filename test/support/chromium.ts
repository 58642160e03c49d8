// Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by playwright-core,
// started as a browser server so the test can stop it by pid, also on failure.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT } from './process.ts';

const require = createRequire(import.meta.url);
export const CHROMIUM = '/usr/bin/chromium';

// Without the background-networking flags Chromium keeps dialling out (the machines have no network).
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

/** Why browser tests cannot run here, or null. A test asserts this is null: missing parts fail, never skip. */
export function chromiumMissing(): string | null {
  if (!existsSync(CHROMIUM)) return 'chromium not installed (apt-get install chromium)';
  try {
    require.resolve('playwright-core');
  } catch {
    return 'playwright-core not installed (npm ci)';
  }
  return null;
}

/** Why the web client cannot be tested in a browser here (Chromium, playwright-core or the built client missing), or null. */
export function webClientMissing(): string | null {
  return chromiumMissing() ?? (existsSync(join(ROOT, 'client/dist/index.html')) ? null : 'client not built (npm run build:client)');
}

export interface BrowserServer {
  wsEndpoint(): string;
  close(): Promise<void>;
  process(): { pid?: number };
}

export interface LaunchedChromium<B> {
  browser: B;
  /** Closes the browser and kills its process by pid. */
  stop(): Promise<void>;
}

export async function launchChromium<B extends { close(): Promise<void> }>(): Promise<LaunchedChromium<B>> {
  const { chromium } = require('playwright-core') as { chromium: { launchServer(o: object): Promise<BrowserServer>; connect(ws: string): Promise<B> } };
  const server = await chromium.launchServer({ executablePath: CHROMIUM, args: ARGS });
  const browser = await chromium.connect(server.wsEndpoint());
  const pid = server.process().pid;
  return {
    browser,
    async stop() {
      await browser.close().catch(() => undefined);
      await server.close().catch(() => undefined);
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
  };
}
