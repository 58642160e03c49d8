// Runs the test files two at a time on our 2-core machines, never two that boot VMs (QEMU,
// libvirt: CPU-bound under TCG) at once, so VM boot times stay what the tests were written for
// while the other files (Redis, Xvnc, Chromium, processes) use the core a VM leaves idle. Two
// workers take files from one queue: VM files first (they are the long ones), the rest after,
// a worker skipping VM files while the other runs one. Each file runs in its own `node --test`
// process; its output is printed as one block when it ends (no interleaving), followed by a
// summary with per-file times.
//
//   node scripts/run-tests.mjs [files...]      VDI_TEST_LANES=1 runs one file at a time.
// A file may say `test-lane: vm` or `test-lane: light` (else its text decides), and
// `test-start: early` to start before the others of its kind (long ones).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Files whose text mentions these boot or drive virtual machines. */
const VM_MARKERS = /qemu|libvirt|demo.?image|bootSmbGuest/i;
const lanes = process.env.VDI_TEST_LANES === '1' ? 1 : 2;
const extraArgs = process.argv.slice(2).filter((a) => a.startsWith('--'));
let files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (!files.length) files = walk('test').filter((f) => f.endsWith('.test.ts')).sort();

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const queue = files
  .map((file) => {
    const text = readFileSync(file, 'utf8');
    const said = /test-lane:\s*(vm|light)\b/.exec(text);
    return { file, vm: said ? said[1] === 'vm' : VM_MARKERS.test(text), early: /test-start:\s*early\b/.test(text) };
  })
  .sort((a, b) => Number(b.vm) - Number(a.vm) || Number(b.early) - Number(a.early));
const vmCount = queue.filter((f) => f.vm).length;
const results = [];
const children = new Set();
const started = Date.now();

function runFile(file) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-timeout=900000', '--test-reporter=spec', ...extraArgs, file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    children.add(child);
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    child.on('close', (code, signal) => {
      children.delete(child);
      const text = Buffer.concat(out).toString();
      const count = (k) => Number(new RegExp(`^ℹ ${k} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      const r = { file, text, seconds: (Date.now() - t0) / 1000, ok: code === 0, tests: count('tests'), pass: count('pass'), fail: count('fail'), skipped: count('skipped') + count('todo'), cancelled: count('cancelled') };
      if (!r.ok && r.fail + r.cancelled === 0) r.fail = 1; // crashed before reporting
      results.push(r);
      process.stdout.write(`\n━━ ${file} — ${r.ok ? 'ok' : `FAILED (${signal ?? `exit ${code}`})`} in ${r.seconds.toFixed(1)} s\n${text}`);
      resolve();
    });
  });
}

let vmRunning = false;
async function worker() {
  for (;;) {
    const i = queue.findIndex((f) => !f.vm || !vmRunning);
    if (i < 0) {
      if (!queue.length) return;
      await new Promise((r) => setTimeout(r, 200)); // only VM files left, one is running
      continue;
    }
    const [next] = queue.splice(i, 1);
    if (next.vm) vmRunning = true;
    await runFile(next.file);
    if (next.vm) vmRunning = false;
  }
}

function stopAll() {
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => (stopAll(), process.exit(130)));

console.log(`running ${files.length} test files, ${lanes} at a time: ${vmCount} with VMs (one at a time), ${files.length - vmCount} without`);
await Promise.all(Array.from({ length: lanes }, worker));

const sum = (k) => results.reduce((a, r) => a + r[k], 0);
const failed = results.filter((r) => !r.ok);
const wall = (Date.now() - started) / 1000;
console.log('\n━━ slowest files');
for (const r of [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 15)) console.log(`${r.seconds.toFixed(1).padStart(7)} s  ${r.file}`);
console.log(`\n━━ ${results.length} files, ${sum('tests')} tests: ${sum('pass')} passed, ${sum('fail')} failed, ${sum('skipped')} skipped, ${sum('cancelled')} cancelled; wall ${Math.floor(wall / 60)} min ${Math.round(wall % 60)} s`);
// Last, so that a CI log's tail says why: each failed test with the first lines of its error.
for (const r of failed) console.log(`FAILED ${r.file}\n${whyFailed(r.text)}`);

/** The spec reporter's "failing tests" section, short: test names and their errors' first lines. */
function whyFailed(text) {
  const at = text.lastIndexOf('✖ failing tests:');
  if (at < 0) return text.trim().split('\n').slice(-8).map((l) => `    ${l.slice(0, 300)}`).join('\n'); // crashed before reporting
  const out = [];
  let errorLines = 0;
  for (const line of text.slice(at).split('\n').slice(1)) {
    if (/^test at /.test(line) || !line.trim()) continue;
    if (/^✖ /.test(line)) {
      out.push(`  ${line.slice(0, 300)}`);
      errorLines = 0;
    } else if (errorLines < 4 && !/^\s+(at |generatedMessage:|code:|actual:|expected:|operator:|[{}])/.test(line)) {
      out.push(`    ${line.trim().slice(0, 300)}`);
      errorLines++;
    }
  }
  return out.slice(0, 30).join('\n');
}
process.exit(failed.length ? 1 : 0);
