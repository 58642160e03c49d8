// The client's string catalogue (client/src/i18n/en.json, de.json): both languages have the same
// keys, no empty value and the same {{placeholders}} per key; no .tsx file under client/src has
// user-facing text written into its JSX (text nodes with letters, or literal title / aria-label /
// placeholder / alt attributes) instead of a t(...) call, brand names and symbols excepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const DIR = 'client/src';
const load = (lang: string) => JSON.parse(readFileSync(join(DIR, 'i18n', `${lang}.json`), 'utf8')) as Record<string, unknown>;

/** Every leaf as [dotted key, value]. */
function leaves(o: Record<string, unknown>, prefix = ''): [string, unknown][] {
  return Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' ? leaves(v as Record<string, unknown>, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]]));
}

/** Text allowed in JSX as written: names that are not translated, units, symbols. */
const ALLOWED = new Set(['VDI', 'Guacamole', 'KVM', 'QEMU', 'LDAP', 'OIDC', 'TOTP', 'MFA', 'CSV', 'JSON', 'SPICE', 'RDP', 'VNC', 'ms', 's', 'B', 'KiB', 'MiB', 'GiB', 'x', 'px', 'OK', 'Ctrl', 'Alt', 'Del', 'Esc', 'Tab', 'Shift', 'Enter', 'AltGr', 'Super', 'Win', 'Fn']);
const ATTRS = new Set(['title', 'aria-label', 'placeholder', 'alt']);

function tsxFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsxFiles(join(dir, e.name)) : e.name.endsWith('.tsx') ? [join(dir, e.name)] : []));
}

/** Hard-coded user-facing strings in a .tsx file: "file:line: text". */
function hardCoded(file: string, text = readFileSync(file, 'utf8')): string[] {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TSX);
  const out: string[] = [];
  const report = (node: ts.Node, text: string) => {
    const words = text.split(/[^A-Za-zÄÖÜäöüß]+/).filter(Boolean);
    if (!words.length || words.every((w) => ALLOWED.has(w))) return;
    out.push(`${relative('.', file)}:${src.getLineAndCharacterOfPosition(node.getStart()).line + 1}: ${text.trim().slice(0, 60)}`);
  };
  const visit = (node: ts.Node) => {
    if (ts.isJsxText(node)) report(node, node.text);
    if (ts.isJsxAttribute(node) && ATTRS.has(node.name.getText(src)) && node.initializer) {
      const init = node.initializer;
      if (ts.isStringLiteral(init)) report(node, init.text);
      else if (ts.isJsxExpression(init) && init.expression && (ts.isStringLiteral(init.expression) || ts.isNoSubstitutionTemplateLiteral(init.expression))) report(node, init.expression.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}

test('English and German have the same keys, no empty value and the same placeholders', () => {
  const en = new Map(leaves(load('en')));
  const de = new Map(leaves(load('de')));
  assert.ok(en.size > 100, `the catalogue has ${en.size} keys`);
  assert.deepEqual([...de.keys()].sort(), [...en.keys()].sort());
  for (const [lang, m] of [['en', en], ['de', de]] as const) {
    for (const [k, v] of m) assert.ok(typeof v === 'string' && v.trim() !== '', `${lang}: ${k} is empty`);
  }
  const vars = (s: unknown) => [...String(s).matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]).sort();
  for (const [k, v] of en) assert.deepEqual(vars(de.get(k)), vars(v), `placeholders of ${k}`);
});

test('no .tsx file under client/src has a hard-coded user-facing string in its JSX', () => {
  const found = tsxFiles(DIR).flatMap((f) => hardCoded(f));
  assert.deepEqual(found, [], `strings to move into client/src/i18n/*.json:\n${found.join('\n')}`);
});

test('the lint sees JSX text and literal labels, and lets t(...) calls, brand names and symbols pass', () => {
  // Guards the check itself against passing everything.
  const probe = `export const A = () => <p title="Open it">Hello {t('x')} <b aria-label={t('y')}>VDI</b> · 5 ms</p>;\n`;
  assert.deepEqual(hardCoded('probe.tsx', probe).map((l) => l.replace(/^.*?: /, '')), ['Open it', 'Hello']);
});
