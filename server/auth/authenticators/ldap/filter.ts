// LDAP search filters from configured templates and untrusted values (RFC 4515). Values are
// never concatenated raw: every one is escaped, so `*)(uid=*` is searched for literally.

/**
 * RFC 4515 assertion value escaping: `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`,
 * `\5c`, `\00`; so do all other control characters and every non-ASCII byte (as UTF-8), which
 * keeps the filter plain ASCII.
 */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += byte < 0x20 || byte >= 0x7f || c === '*' || c === '(' || c === ')' || c === '\\' ? `\\${byte.toString(16).padStart(2, '0')}` : c;
  }
  return out;
}

/**
 * Fills `{name}` placeholders of a configured filter with escaped values. An unknown
 * placeholder is an error (a typo in the configuration must not silently match everything).
 */
export function fillFilter(template: string, values: Record<string, string>): string {
  return template.replace(/\{([a-zA-Z]+)\}/g, (_, name: string) => {
    if (!Object.hasOwn(values, name)) throw new Error(`unknown placeholder {${name}} in LDAP filter ${template}`);
    return escapeFilterValue(values[name]!);
  });
}

/** The placeholders a filter template uses (to check a configuration at startup). */
export function placeholdersOf(template: string): string[] {
  return [...template.matchAll(/\{([a-zA-Z]+)\}/g)].map((m) => m[1]!);
}
