// Derived docs stay true: regenerate them with `npm run docs` when these fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { openApiDocument } from '../../scripts/openapi-doc.ts';
import { configTable } from '../../scripts/config-table.ts';
import { keyspace } from '../../server/store/keys.ts';

const read = (f: string) => readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');

test('docs/openapi.json is the document the broker serves', async () => {
  assert.deepEqual(JSON.parse(read('docs/openapi.json')), JSON.parse(JSON.stringify(await openApiDocument())));
});

test("README's configuration table lists every key of config/default.yaml", () => {
  assert.ok(read('README.md').includes(configTable()));
});

test('docs/redis-keys.md names every key family of server/store/keys.ts', () => {
  const doc = read('docs/redis-keys.md');
  const k = keyspace('P ');
  for (const [name, v] of Object.entries(k)) {
    if (name === 'prefix') continue;
    const sample = typeof v === 'function' ? (v as (...a: string[]) => string)('{x}', '{y}') : v;
    const family = sample.replace(/^P /, '').split(/[{:]/)[0]!;
    assert.ok(doc.includes(`P ${family}`), `${name} (${sample}) is not documented`);
  }
});
