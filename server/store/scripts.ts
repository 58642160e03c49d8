import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Redis } from 'ioredis';
import { transitionsAsLua } from '../broker/state-machine.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'lua');

const SCRIPTS = {
  vdiAssign: 'assign.lua',
  vdiRelease: 'release.lua',
  vdiTransition: 'transition.lua',
  vdiProvision: 'provision.lua',
  vdiSessionEvent: 'session-event.lua',
  vdiAssignOwner: 'assign-owner.lua',
  vdiPoolSave: 'pool-save.lua',
  vdiLease: 'lease.lua',
  vdiLeaseRelease: 'lease-release.lua',
  vdiDrain: 'drain.lua',
  vdiMachineAdd: 'machine-add.lua',
  vdiUserGet: 'user-get.lua',
  vdiHttpSession: 'http-session.lua',
} as const;

/**
 * Small read scripts run on every API request: without the prelude (its tables are built on
 * every call of a script that has it), so they set P = ARGV[1] themselves.
 */
const BARE: ReadonlySet<string> = new Set(['user-get.lua', 'http-session.lua']);

export type ScriptName = keyof typeof SCRIPTS;

let prelude: string | undefined;
let hashJson: string | undefined;

function source(file: string): string {
  // Every script, bare or not, can return a record as JSON (hash_json: one definition, no tables built per call).
  hashJson ??= readFileSync(join(DIR, 'hash-json.lua'), 'utf8');
  if (BARE.has(file)) return `${hashJson}\n${readFileSync(join(DIR, file), 'utf8')}`;
  prelude ??= readFileSync(join(DIR, 'prelude.lua'), 'utf8').replace('__TRANSITIONS__', transitionsAsLua());
  return `${hashJson}\n${prelude}\n${readFileSync(join(DIR, file), 'utf8')}`;
}

/** Registers every script on the client (EVALSHA, reloaded by ioredis after a Redis restart). */
export function defineScripts(client: Redis): void {
  for (const [name, file] of Object.entries(SCRIPTS)) {
    if (!(name in client)) client.defineCommand(name, { numberOfKeys: 0, lua: source(file) });
  }
}

/** Runs a registered script; arguments are strings or numbers. */
export async function runScript(client: Redis, name: ScriptName, args: (string | number)[]): Promise<unknown> {
  const fn = (client as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[name];
  if (!fn) throw new Error(`script ${name} not defined`);
  return fn.apply(client, args);
}
