// The web client's one string catalogue (client/src/i18n/en.json, de.json), checked from the
// sources without a browser: English and German have exactly the same keys, no empty value, the
// same {{placeholders}} per key and every plural form their language needs; every key the code
// names (t('…'), tr('…'), tParts('…'), a key in a lookup table, t(`prefix.${…}`)) is in the
// catalogue and every catalogue key is named somewhere; and no .tsx file shows people text that
// does not come through the catalogue (JSX text, title / aria-label / placeholder / alt / label
// attributes, literal strings in JSX expressions, confirm-dialog titles and actions, confirm() and
// prompt() texts, thrown errors), brand names, protocol names and key caps excepted. And the
// client's own messages built outside components (broker errors, refused fields, stream status,
// sentences with elements in them) come out in German when German is picked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { ApiError, describeError, fieldError } from '../../client/src/api.ts';
import { setLanguage, tParts } from '../../client/src/i18n/index.ts';
import { describeStatus } from '../../client/src/viewer/status.ts';

const SRC = 'client/src';
const LANGS = ['en', 'de'] as const;
const catalogue = (lang: string) => JSON.parse(readFileSync(join(SRC, 'i18n', `${lang}.json`), 'utf8')) as Record<string, unknown>;

/** Every leaf as [dotted key, value]. */
function leaves(o: Record<string, unknown>, prefix = ''): [string, unknown][] {
  return Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' ? leaves(v as Record<string, unknown>, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]]));
}

const PLURAL = /_(zero|one|two|few|many|other)$/;
/** The key code names for a plural form ("files.uploadedMany_one" -> "files.uploadedMany"). */
const baseOf = (key: string) => key.replace(PLURAL, '');
const placeholders = (s: unknown) => [...String(s).matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!).sort();

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []));
}
const parse = (file: string, text = readFileSync(file, 'utf8')) => ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('.tsx') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);

/** The translation calls: t / tr (the same function imported under another name) / tParts / i18next.t. */
const isTranslation = (n: ts.Node): n is ts.CallExpression => ts.isCallExpression(n) && /^(t|tr|tParts|i18next\.t)$/.test(n.expression.getText());

interface KeyUse { literal: string[]; dynamicPrefixes: string[]; strings: string[] }

/** The keys a source names: literal first arguments of translation calls (both sides of a ?:), template prefixes, and every string literal. */
function keyUses(src: ts.SourceFile): KeyUse {
  const out: KeyUse = { literal: [], dynamicPrefixes: [], strings: [] };
  const firstArg = (a: ts.Expression | undefined) => {
    if (!a) return;
    if (ts.isParenthesizedExpression(a)) return firstArg(a.expression);
    if (ts.isStringLiteral(a) || ts.isNoSubstitutionTemplateLiteral(a)) out.literal.push(a.text);
    else if (ts.isConditionalExpression(a)) {
      firstArg(a.whenTrue);
      firstArg(a.whenFalse);
    } else if (ts.isTemplateExpression(a)) out.dynamicPrefixes.push(a.head.text);
  };
  const visit = (n: ts.Node) => {
    if (isTranslation(n)) firstArg(n.arguments[0]);
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) out.strings.push(n.text);
    ts.forEachChild(n, visit);
  };
  visit(src);
  return out;
}

/**
 * Words allowed in the UI as written, each for a reason: product and protocol names, units and
 * key caps are the same in every language we ship (the on-screen keyboard is a US layout, its
 * caps say what is printed on such a keyboard).
 */
const ALLOWED = new Set([
  // names of products, protocols, formats
  'VDI', 'Guacamole', 'KVM', 'QEMU', 'LDAP', 'OIDC', 'TOTP', 'MFA', 'CSV', 'JSON', 'SPICE', 'RDP', 'VNC', 'WoL', 'vdi', 'broker',
  // units
  'ms', 'KiB', 'MiB', 'GiB', 'px',
  // key caps and key combinations sent to the desktop
  'Ctrl', 'Alt', 'Del', 'Esc', 'Tab', 'Shift', 'Enter', 'AltGr', 'Super', 'Win', 'Fn', 'Space',
]);
/** Attributes and dialog fields people read. */
const SHOWN_ATTRS = new Set(['title', 'aria-label', 'placeholder', 'alt', 'label']);
const SHOWN_PROPS = new Set(['title', 'action', 'label', 'text', 'message']);
/** Attributes whose strings are never shown (classes, ids, URLs, enum values). */
const HIDDEN_ATTRS = /^(class|className|style|id|key|href|src|name|type|value|role|for|htmlFor|autocomplete|autoComplete|autocapitalize|inputMode|pattern|method|accept|lang|rel|target|download|viewBox|d|fill|stroke|data-.*|aria-(live|controls|describedby|labelledby|current|haspopup|expanded|hidden|sort|invalid|modal))$/;

const looksLikeKey = (s: string, namespaces: Set<string>) => /^[a-zA-Z][\w]*(\.[\w]+)+$/.test(s) && namespaces.has(s.split('.')[0]!);

/** Text people would read, without a t(...) call: "file:line: text". */
function untranslated(file: string, namespaces: Set<string>, text?: string): string[] {
  const src = parse(file, text);
  const out: string[] = [];
  const report = (node: ts.Node, s: string) => {
    if (looksLikeKey(s, namespaces)) return;
    const words = s.split(/[^A-Za-zÄÖÜäöüß]+/).filter((w) => w.length > 1);
    if (!words.length || words.every((w) => ALLOWED.has(w))) return;
    out.push(`${relative('.', file)}:${src.getLineAndCharacterOfPosition(node.getStart()).line + 1}: ${s.trim().slice(0, 70)}`);
  };
  /** Literal text an expression can evaluate to, not counting what a call (t(...)) or nested JSX makes. */
  const literals = (e: ts.Node): void => {
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return report(e, e.text);
    if (ts.isTemplateExpression(e)) {
      report(e, [e.head.text, ...e.templateSpans.map((s) => s.literal.text)].join(' '));
      return e.templateSpans.forEach((s) => literals(s.expression));
    }
    if (ts.isParenthesizedExpression(e)) return literals(e.expression);
    if (ts.isConditionalExpression(e)) return [e.whenTrue, e.whenFalse].forEach(literals);
    if (ts.isBinaryExpression(e) && /^(\|\||\?\?|&&|\+)$/.test(e.operatorToken.getText(src))) return [e.left, e.right].forEach(literals);
  };
  const visit = (node: ts.Node) => {
    if (ts.isJsxText(node)) report(node, node.text);
    else if (ts.isJsxAttribute(node) && node.initializer) {
      const name = node.name.getText(src);
      const init = node.initializer;
      if (SHOWN_ATTRS.has(name)) {
        if (ts.isStringLiteral(init)) report(node, init.text);
        else if (ts.isJsxExpression(init) && init.expression) literals(init.expression);
      } else if (!HIDDEN_ATTRS.test(name) && ts.isJsxExpression(init) && init.expression && !ts.isArrowFunction(init.expression)) literals(init.expression);
    } else if (ts.isJsxExpression(node) && node.expression && (ts.isJsxElement(node.parent) || ts.isJsxFragment(node.parent))) literals(node.expression);
    else if (ts.isPropertyAssignment(node) && SHOWN_PROPS.has(node.name.getText(src))) literals(node.initializer);
    else if (ts.isCallExpression(node) && /^(window\.)?(confirm|prompt|alert)$/.test(node.expression.getText(src)) && node.arguments[0]) literals(node.arguments[0]);
    else if (ts.isNewExpression(node) && node.expression.getText(src) === 'Error' && node.arguments?.[0]) literals(node.arguments[0]);
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}

const en = new Map(leaves(catalogue('en')));
const NAMESPACES = new Set(Object.keys(catalogue('en')));

test('English and German have exactly the same keys, no empty value, the same placeholders per key and complete plural forms', () => {
  const cats = Object.fromEntries(LANGS.map((l) => [l, new Map(leaves(catalogue(l)))])) as Record<(typeof LANGS)[number], Map<string, unknown>>;
  assert.ok(cats.en.size > 500, `the catalogue has ${cats.en.size} keys`);
  assert.deepEqual([...cats.de.keys()].sort(), [...cats.en.keys()].sort());
  for (const lang of LANGS) {
    const m = cats[lang];
    for (const [k, v] of m) assert.ok(typeof v === 'string' && v.trim() !== '', `${lang}: ${k} is empty`);
    // A key that has plural forms has all of them for this language (en, de: one and other) and no bare form.
    const needed = new Intl.PluralRules(lang).resolvedOptions().pluralCategories;
    for (const base of new Set([...m.keys()].filter((k) => PLURAL.test(k)).map(baseOf))) {
      for (const c of needed) assert.ok(m.has(`${base}_${c}`), `${lang}: ${base}_${c} is missing`);
      assert.ok(!m.has(base), `${lang}: ${base} has plural forms and a bare form`);
    }
  }
  for (const [k, v] of cats.en) assert.deepEqual(placeholders(cats.de.get(k)), placeholders(v), `placeholders of ${k}`);
});

test('every key the client names is in the catalogue, and every catalogue key is named by the client', () => {
  const uses = sourceFiles(SRC).map((f) => ({ file: f, ...keyUses(parse(f)) }));
  const bases = new Set([...en.keys()].map(baseOf));
  const missing: string[] = [];
  for (const u of uses) {
    for (const k of u.literal) if (!bases.has(k)) missing.push(`${u.file}: t('${k}')`);
    // Keys kept in lookup tables (SSO error codes, drain states, chart series) look like keys.
    for (const s of u.strings) if (looksLikeKey(s, NAMESPACES) && !bases.has(s) && ![...bases].some((b) => b.startsWith(`${s}.`))) missing.push(`${u.file}: '${s}'`);
    for (const p of u.dynamicPrefixes) if (![...bases].some((b) => b.startsWith(p))) missing.push(`${u.file}: t(\`${p}\${…}\`)`);
  }
  assert.deepEqual(missing, [], 'keys named in client/src but not in en.json');
  const strings = new Set(uses.flatMap((u) => u.strings));
  const prefixes = uses.flatMap((u) => u.dynamicPrefixes).filter((p) => p.length > 0);
  const unused = [...bases].filter((b) => !strings.has(b) && !prefixes.some((p) => b.startsWith(p)));
  assert.deepEqual(unused, [], 'catalogue keys no code names');
});

test('no .tsx file under client/src shows text that does not come from the catalogue', () => {
  const found = sourceFiles(SRC).filter((f) => f.endsWith('.tsx')).flatMap((f) => untranslated(f, NAMESPACES));
  assert.deepEqual(found, [], `strings to move into client/src/i18n/*.json:\n${found.join('\n')}`);
});

test('the scan sees text in JSX, labels, ?: branches, dialog fields, confirm() and thrown errors, and lets t(...), keys, names and key caps pass', () => {
  // Guards the check itself against passing everything.
  const probe = [
    `export const A = (p: { on: boolean }) => <p title="Open it" class="banner ok">Hello {t('x')} <b aria-label={t('y')}>VNC</b> · 5 ms {p.on ? 'Turn off' : t('z')}`,
    `  <button onClick={() => ask({ title: \`Drain \${p}\`, action: t('a'), label: 'viewer.windowsKey' })} data-x="Not shown">Ctrl-Alt-Del</button>`,
    `  <i title={p.on ? 'Stop it' : undefined} />{confirm('Really delete?')}{new Error('It broke')}</p>;`,
  ].join('\n');
  const found = untranslated('probe.tsx', new Set(['viewer']), probe).map((l) => l.replace(/^.*?: /, ''));
  assert.deepEqual(found, ['Open it', 'Hello', 'Turn off', 'Drain', 'Stop it', 'Really delete?', 'It broke']);
});

test("the client's own messages follow the language: broker errors, refused fields, stream status, sentences with elements", () => {
  const locked = new ApiError(423, 'account_locked', 'account locked', 120);
  const field = new ApiError(400, 'validation', 'name: Too small: expected string to have >=3 characters', null, 'name');
  try {
    setLanguage('en');
    assert.equal(describeError(locked), 'This account is locked after too many failed attempts. Try again in 2 min.');
    assert.equal(describeError(new ApiError(423, 'account_locked', 'account locked', null)), 'This account is locked after too many failed attempts. Try again later or ask the helpdesk.');
    assert.equal(fieldError(field)?.message, 'Use at least 3 characters.');
    setLanguage('de');
    assert.equal(describeError(locked), 'Dieses Konto ist nach zu vielen Fehlversuchen gesperrt. Versuchen Sie es in 2 min erneut.');
    assert.equal(describeError(new ApiError(401, 'invalid_credentials', 'bad', null)), 'Falscher Benutzername oder falsches Passwort.');
    assert.equal(fieldError(field)?.message, 'Verwenden Sie mindestens 3 Zeichen.');
    assert.equal(describeStatus(0x0209).message, 'Dieser Desktop wurde in einem anderen Fenster oder Tab geöffnet.');
    assert.equal(describeStatus(0x0999).message, 'Unerwarteter Fehler (Status 0x0999).');
    // German word order: the elements land where the German sentence puts them.
    assert.deepEqual(tParts('devices.codeMade', { code: 'CODE', url: 'URL' }, { location: 'lab-1' }), ['Code für lab-1: ', 'CODE', ' — wird nur jetzt angezeigt. Öffnen Sie auf dem Kiosk ', 'URL', ' oder geben Sie ihn unter /enroll ein.']);
  } finally {
    setLanguage('en');
  }
});
