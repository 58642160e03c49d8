// Regenerates the parts of docs/ that are derived from code: the state diagram and the
// OpenAPI file. Tests fail when these are stale. Run: node --import tsx scripts/docs.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { stateDiagramMermaid } from '../server/broker/state-machine.ts';
import { openApiDocument } from './openapi-doc.ts';
import { configTable } from './config-table.ts';

const sm = 'docs/state-machine.md';
const doc = readFileSync(sm, 'utf8');
writeFileSync(sm, doc.replace(/```mermaid\n[\s\S]*?```/, '```mermaid\n' + stateDiagramMermaid() + '\n```'));
const readme = readFileSync('README.md', 'utf8');
writeFileSync('README.md', readme.replace(/<!-- config-table:start -->[\s\S]*?<!-- config-table:end -->/, `<!-- config-table:start -->\n${configTable()}\n<!-- config-table:end -->`));
writeFileSync('docs/openapi.json', JSON.stringify(await openApiDocument(), null, 2) + '\n');
process.stdout.write('docs regenerated\n');
process.exit(0);
