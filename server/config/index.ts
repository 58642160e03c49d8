import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import YAML from 'yaml';
import { configSchema, type Config } from './schema.ts';

export type { Config } from './schema.ts';

export const DEFAULT_CONFIG_FILE = resolve(dirname(fileURLToPath(import.meta.url)), '../../config/default.yaml');

/** A configuration problem: one line naming the key and what is wrong with it. */
export class ConfigError extends Error {
  constructor(readonly key: string, problem: string) {
    super(`config error: ${key}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Tree = { [k: string]: unknown };

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(base: Tree, over: Tree, path: string[] = []): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const cur = out[k];
    out[k] = isTree(cur) && isTree(v) ? merge(cur, v, [...path, k]) : v;
  }
  return out;
}

function readYaml(file: string, key: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(key, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new ConfigError(key, `${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isTree(doc)) throw new ConfigError(key, `${file} must hold a mapping at the top level`);
  return doc;
}

/** server.bodyLimitBytes -> VDI_SERVER_BODY_LIMIT_BYTES */
export function envName(path: string[]): string {
  return 'VDI_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function leafPaths(tree: Tree, prefix: string[] = []): string[][] {
  const out: string[][] = [];
  for (const [k, v] of Object.entries(tree)) {
    if (isTree(v)) out.push(...leafPaths(v, [...prefix, k]));
    else out.push([...prefix, k]);
  }
  return out;
}

function setPath(tree: Tree, path: string[], value: unknown): void {
  let node = tree;
  for (const p of path.slice(0, -1)) {
    if (!isTree(node[p])) node[p] = {};
    node = node[p] as Tree;
  }
  node[path[path.length - 1]!] = value;
}

function envValue(raw: string, current: unknown): unknown {
  // Strings stay strings (a password "123" must not become a number); everything else is
  // parsed as YAML so numbers, booleans and lists can be given.
  if (typeof current === 'string') return raw;
  try {
    return YAML.parse(raw);
  } catch {
    return raw;
  }
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: Tree;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  let tree = readYaml(DEFAULT_CONFIG_FILE, 'config/default.yaml');
  const file = opts.file ?? env.VDI_CONFIG;
  if (file) tree = merge(tree, readYaml(file, 'VDI_CONFIG'));

  const known = new Set<string>(['VDI_CONFIG', 'VDI_CONFIG_FILE']);
  for (const path of leafPaths(tree)) {
    const name = envName(path);
    known.add(name).add(`${name}_FILE`);
    const key = path.join('.');
    const cur = path.reduce<unknown>((n, p) => (isTree(n) ? n[p] : undefined), tree);
    const fileVar = env[`${name}_FILE`];
    if (fileVar !== undefined && fileVar !== '') {
      let v: string;
      try {
        v = readFileSync(fileVar, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? String(e);
        // The usual container mistake: a 0600 secret owned by the host user, read by ours.
        const hint = code === 'EACCES' && process.getuid ? ` (not readable by uid ${process.getuid()}: chown it to that uid or make it group-readable)` : '';
        throw new ConfigError(key, `cannot read ${name}_FILE=${fileVar}: ${code}${hint}`);
      }
      setPath(tree, path, envValue(v, cur));
    } else if (env[name] !== undefined) {
      setPath(tree, path, envValue(env[name]!, cur));
    }
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('VDI_') && !known.has(name) && !/^VDI_(TEST|QUICKSTART)_/.test(name)) {
      throw new ConfigError(name, 'unknown environment variable (no such configuration key)');
    }
  }
  if (opts.overrides) tree = merge(tree, opts.overrides);

  const parsed = configSchema.safeParse(tree);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    let path = issue.path.map(String).join('.');
    let msg = issue.message;
    if (issue.code === 'unrecognized_keys') {
      path = [...issue.path.map(String), issue.keys[0]].join('.');
      msg = 'unknown key';
    }
    const got = path ? path.split('.').reduce<unknown>((n, p) => (isTree(n) ? n[p] : undefined), tree) : undefined;
    const secret = /secret|password/i.test(path);
    throw new ConfigError(path || '(root)', got === undefined || secret || issue.code === 'unrecognized_keys' ? msg : `${msg} (got ${JSON.stringify(got)})`);
  }
  return parsed.data;
}
