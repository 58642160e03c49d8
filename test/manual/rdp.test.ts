// RDP machines through an external guacd, at the protocol level: a real xrdp is the machine
// (its X.224 connection confirm makes it ready), and a test-owned guacd (RecordingGuacd: the
// guacd side of the handshake, no RDP client behind it) records the `connect` values the
// broker's tunnel sends for it: credentials, security mode, certificate check, domain, the
// user's folder as a redirected drive, resize method and audio. xrdp is stopped by pid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startManualBroker, type ManualBroker } from './support/broker.ts';
import { hasXrdp, startXrdp, type Xrdp } from './support/xrdp.ts';
import { RecordingGuacd } from './support/rdp-guacd.ts';
import { TunnelClient } from '../tunnel/support/tunnel-client.ts';
import { until } from '../tunnel/support/fixtures.ts';

const SECRET = 'Rds-s3cret-42';
let xrdp: Xrdp | undefined;
let guacd: RecordingGuacd;
let tb: ManualBroker;

before(async () => {
  if (hasXrdp()) xrdp = await startXrdp();
  guacd = await RecordingGuacd.start();
  tb = await startManualBroker('manual-rdp', { guacd: { host: '127.0.0.1', port: guacd.port } });
  await tb.addUser('alice');
  await tb.addUser('ada', 'admin');
  await tb.pool('rds', { entitlements: { users: ['alice'], groups: [] }, fileTransfer: { download: true, upload: false } });
});

after(async () => {
  await tb?.close();
  await guacd?.close();
  await xrdp?.stop();
});

test('an RDP machine answering X.224 becomes ready, and guacd receives its credentials, security, domain, drive, resize and audio settings', async () => {
  assert.ok(xrdp, 'xrdp is installed (apt-get install xrdp)');
  const admin = await tb.client('ada');
  const add = await admin.post('/machines', {
    name: 'rds-01', pool: 'rds', protocol: 'rdp', address: '127.0.0.1', port: xrdp!.port,
    username: 'student', password: SECRET, domain: 'LAB', security: 'nla', ignoreCert: true,
  });
  assert.equal(add.status, 201, JSON.stringify(add.body));
  assert.ok(!JSON.stringify(add.body).includes(SECRET));
  await until(async () => (await admin.get('/machines/rds-01')).body.machine.desktop.state === 'ready', 15_000, 'RDP machine ready');
  assert.equal((await admin.get('/machines/rds-01')).body.machine.health, 'answering');

  const alice = await tb.client('alice');
  const got = await alice.post('/me/pools/rds/request');
  assert.equal(got.body.outcome, 'assigned', JSON.stringify(got.body));
  const t = await alice.post(`/me/sessions/${got.body.session.id}/connect`);
  assert.equal(t.status, 200, JSON.stringify(t.body));
  assert.ok(!JSON.stringify(t.body).includes(SECRET), 'the browser never sees the password');
  const c = new TunnelClient(tb.url, { ticket: t.body.ticket, as: { cookie: alice.cookie, bearer: '' }, query: 'width=1024&height=768' });
  try {
    await until(() => guacd.connects.length > 0, 10_000, 'guacd connect');
    const { select, args } = guacd.connects[0]!;
    assert.equal(select, 'rdp');
    assert.equal(args.hostname, '127.0.0.1');
    assert.equal(args.port, String(xrdp!.port));
    assert.equal(args.username, 'student');
    assert.equal(args.password, SECRET);
    assert.equal(args.domain, 'LAB');
    assert.equal(args.security, 'nla');
    assert.equal(args['ignore-cert'], 'true');
    assert.equal(args['enable-drive'], 'true');
    assert.equal(args['drive-path'], '/srv/homes/alice');
    assert.equal(args['drive-name'], tb.config.shares.rdpDriveName);
    assert.equal(args['create-drive-path'], 'true');
    assert.equal(args['disable-download'], 'false');
    assert.equal(args['disable-upload'], 'true');
    assert.equal(args['resize-method'], 'display-update');
    assert.equal(args['disable-audio'], 'false');
  } finally {
    c.ws.close();
    await c.closed;
  }
  assert.ok(!tb.logs.some((l) => l.includes(SECRET)), 'the password is never logged');
});
