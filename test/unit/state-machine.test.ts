import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DESKTOP_STATES, TRANSITIONS, canTransition, stateDiagramMermaid, transitionsAsLua } from '../../server/broker/state-machine.ts';

test('every state is in the table and every target is a state', () => {
  for (const s of DESKTOP_STATES) {
    assert.ok(Array.isArray(TRANSITIONS[s]));
    for (const t of TRANSITIONS[s]) assert.ok(DESKTOP_STATES.includes(t), `${s} -> ${t}`);
  }
});

test('the lifecycle rules users rely on', () => {
  assert.ok(canTransition('provisioning', 'ready'));
  assert.ok(canTransition('ready', 'in_use'));
  assert.ok(canTransition('in_use', 'refreshing'));
  assert.ok(canTransition('refreshing', 'ready'));
  assert.ok(canTransition('deleting', 'deleted'));
  assert.ok(!canTransition('deleted', 'ready'), 'deleted is final');
  assert.ok(!canTransition('ready', 'deleted'), 'nothing is deleted without going through deleting');
  assert.ok(!canTransition('error', 'ready'), 'a quarantined desktop is rebuilt before it is used');
  assert.ok(!canTransition('error', 'in_use'));
  for (const s of DESKTOP_STATES) if (s !== 'deleted' && s !== 'deleting') assert.ok(canTransition(s, 'deleting'), `${s} can be deleted`);
  for (const s of DESKTOP_STATES) assert.ok(!canTransition(s, s), `${s} -> ${s} is no transition`);
});

test('the Lua table says the same as the TypeScript table', () => {
  const lua = transitionsAsLua();
  for (const s of DESKTOP_STATES) {
    const row = new RegExp(`${s}=\\{([^}]*)\\}`).exec(lua)?.[1] ?? '';
    const targets = row ? row.split(',').map((x) => x.replace('=true', '')) : [];
    assert.deepEqual(targets, [...TRANSITIONS[s]]);
  }
});

test('docs/state-machine.md shows the current diagram', () => {
  const doc = readFileSync(new URL('../../docs/state-machine.md', import.meta.url), 'utf8');
  assert.ok(doc.includes(stateDiagramMermaid()), 'regenerate the mermaid block: node --import tsx scripts/docs.ts');
});
