// What deploy/ ships, checked by the tools operators use: Prometheus's promtool (rule syntax and
// the rules' own unit tests), yamllint, systemd-analyze, docker-compose; every broker
// configuration in deploy/ validated by the broker's own config loader; and every metric the
// alert rules and the Grafana dashboard use exported by a running broker process's /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ApiClient, startTestBroker, type TestBroker } from '../support/harness.ts';
import { ROOT, startBrokerProcess, type BrokerProcess } from '../support/process.ts';
import { SHARED_REDIS_URL, freePort } from '../support/redis.ts';
import { loadConfig } from '../../server/config/index.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

const run = promisify(execFile);
const D = (p: string) => join(ROOT, 'deploy', p);
let admin: TestBroker;
let proc: BrokerProcess | undefined;

before(async () => {
  admin = await startTestBroker({ name: 'deploy' });
});
after(async () => {
  await proc?.kill('SIGKILL');
  await admin?.close();
});

test('the alert rules pass promtool check and their unit tests', async () => {
  const check = await run('promtool', ['check', 'rules', D('prometheus/alerts.yml')]);
  assert.match(check.stdout, /SUCCESS: \d+ rules found/);
  const unit = await run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: D('prometheus') });
  assert.match(unit.stdout, /SUCCESS/);
});

test('deploy/ YAML lints clean, the systemd unit verifies, and the compose files validate', async () => {
  await run('yamllint', ['-d', '{extends: relaxed, rules: {line-length: disable}}', '--strict', D('kubernetes'), D('prometheus')]);
  const v = await run('systemd-analyze', ['verify', D('systemd/vdi-broker.service')]);
  assert.equal(v.stderr.trim(), '', v.stderr);
  const unit = readFileSync(D('systemd/vdi-broker.service'), 'utf8');
  for (const hardening of ['User=vdi-broker', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'CapabilityBoundingSet=', 'SystemCallFilter=@system-service']) {
    assert.ok(unit.includes(`\n${hardening}\n`), hardening);
  }
  await run('docker-compose', ['-f', D('compose/docker-compose.yml'), 'config', '-q']);
});

test('the Kubernetes manifests declare probes, a disruption budget, anti-affinity and a non-root, read-only broker', () => {
  const docs = parseAllDocuments(readFileSync(D('kubernetes/broker.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: any; data?: Record<string, string> });
  const broker = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'vdi-broker')!;
  const pod = broker.spec.template.spec;
  const c = pod.containers[0];
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.ok(pod.affinity.podAntiAffinity);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.ok(broker.spec.replicas >= 2);
  const pdb = docs.find((d) => d.kind === 'PodDisruptionBudget')!;
  assert.deepEqual(pdb.spec.selector, broker.spec.selector);
});

test('every broker configuration in deploy/ passes the broker\'s own config validation', () => {
  const docs = parseAllDocuments(readFileSync(D('kubernetes/broker.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; data?: Record<string, string> });
  const configMap = docs.find((d) => d.kind === 'ConfigMap')!;
  // The loader reads files; the ConfigMap's text goes through the same path a pod's does.
  const dir = mkdtempSync(join(tmpdir(), 'vdi-deploy-'));
  try {
    writeFileSync(join(dir, 'config.yaml'), configMap.data!['config.yaml']!);
    const cfg = loadConfig({ file: join(dir, 'config.yaml'), env: { VDI_SESSION_SECRET: 'x'.repeat(32) } });
    assert.ok(cfg.redis);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const composeFile of ['docker-compose.yml', 'deploy/compose/docker-compose.yml']) {
    const compose = parseAllDocuments(readFileSync(join(ROOT, composeFile), 'utf8'))[0]!.toJS() as { services: Record<string, { environment?: Record<string, string> }> };
    for (const [name, svc] of Object.entries(compose.services)) {
      const env = svc.environment;
      if (!env?.VDI_SESSION_SECRET_FILE) continue;
      // Secrets come from files the test does not have: give their values directly.
      const vars = Object.fromEntries(Object.entries(env).filter(([k]) => !k.endsWith('_FILE')));
      assert.doesNotThrow(() => loadConfig({ env: { ...vars, VDI_SESSION_SECRET: 'x'.repeat(32) } }), `${composeFile} ${name}`);
    }
  }
});


test('every metric the alert rules and the dashboard use is exported by a running broker', async () => {
  const { token } = await admin.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'prometheus', role: 'helpdesk' });
  proc = await startBrokerProcess('server/main.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(await freePort()), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: admin.prefix,
  });
  const api = new ApiClient(proc.url);
  api.bearer = token;
  const scrape = await api.get('/metrics');
  assert.equal(scrape.status, 200);
  const exported = new Set([...String(scrape.body).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  const used = new Set<string>();
  const sources = [readFileSync(D('prometheus/alerts.yml'), 'utf8'), readFileSync(D('grafana/vdi-broker.json'), 'utf8')];
  for (const s of sources) for (const m of s.matchAll(/\b(vdi_[a-z_]+?)(?:_bucket|_count|_sum)?\b/g)) used.add(m[1]!);
  assert.ok(used.size >= 10, [...used].join(' '));
  const missing = [...used].filter((m) => !exported.has(m));
  assert.deepEqual(missing, [], `used by alerts/dashboard but not exported: ${missing.join(', ')}`);
});
