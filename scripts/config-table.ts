// The configuration reference table in README.md, generated from config/default.yaml.
import { readFileSync } from 'node:fs';
import YAML, { isMap, type YAMLMap, type Pair, type Scalar } from 'yaml';
import { envName, DEFAULT_CONFIG_FILE } from '../server/config/index.ts';

export function configTable(): string {
  const doc = YAML.parseDocument(readFileSync(DEFAULT_CONFIG_FILE, 'utf8'));
  const rows: string[] = ['| key | environment variable | default | meaning |', '|---|---|---|---|'];
  const walk = (map: YAMLMap, path: string[]) => {
    map.items.forEach((item, i) => {
      const pair = item as Pair<Scalar, unknown>;
      const key = String(pair.key.value);
      let comment = (pair.key.commentBefore ?? '').replace(/\s*\n\s*/g, ' ').trim();
      if (!comment && i === 0) comment = (map.commentBefore ?? '').replace(/\s*\n\s*/g, ' ').trim();
      if (isMap(pair.value)) return walk(pair.value, [...path, key]);
      const value = JSON.stringify((pair.value as Scalar).toJSON());
      rows.push(`| \`${[...path, key].join('.')}\` | \`${envName([...path, key])}\` | \`${value}\` | ${comment.replace(/\|/g, '\\|')} |`);
    });
  };
  walk(doc.contents as YAMLMap, []);
  return rows.join('\n');
}
