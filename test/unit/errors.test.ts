import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, BrokerError } from '../../server/errors.ts';

test('docs/errors.md lists exactly the codes in server/errors.ts, with their statuses', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])] as const);
  const documented = new Map(rows);
  for (const [code, { status }] of Object.entries(ERROR_CODES)) assert.equal(documented.get(code), status, `${code} documented with ${status}`);
  for (const code of documented.keys()) assert.ok(code in ERROR_CODES, `${code} is documented but no longer exists`);
});

test('BrokerError serialises to {error: {code, message, field?}}', () => {
  const e = new BrokerError('validation_failed', 'name: too long', { field: 'name' });
  assert.deepEqual(JSON.parse(JSON.stringify(e)), { error: { code: 'validation_failed', message: 'name: too long', field: 'name' } });
  assert.equal(e.status, 400);
  assert.deepEqual(new BrokerError('pool_exhausted').toJSON().error.code, 'pool_exhausted');
});
