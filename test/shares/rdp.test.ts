// The user's folder as an RDP drive through guacd: the parameters guacd reads, per pool switches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { consoleSettings } from '../../server/tunnel/settings.ts';
import { ShareService, HomeShares } from '../../server/shares/index.ts';
import { Metrics, createLogger } from '../../server/observability/index.ts';
import { ProviderRegistry } from '../../server/providers/index.ts';

test('RDP console settings carry the drive: guacd path of the user folder, name, upload/download switches', () => {
  const logger = createLogger('silent');
  const shares = new ShareService(
    { list: [{ name: 'home', root: '/srv/home', unc: '\\\\files\\home\\{username}', guacdPath: '/mnt/guacd/home', createRoot: false }, { name: 'lab', root: '/srv/lab', unc: '', guacdPath: '', createRoot: false }], quota: { softBytes: 1, hardBytes: 2 }, maxUploadBytes: 10, healthTimeoutMs: 1000, healthCacheMs: 0, usageRecountMs: 1000, staleUploadMs: 60_000, rdpDriveName: 'Home' },
    { logger, metrics: new Metrics({ defaultMetrics: false }), audit: { record: async () => undefined } as never, quota: {} as never },
  );
  const home = new HomeShares(shares, new ProviderRegistry([]), logger);
  const s = consoleSettings({ protocol: 'rdp', host: '10.0.0.5', port: 3389 }, home.drive({ name: 'p', fileTransfer: { download: false, upload: true } }, 'alice'));
  assert.equal(s['enable-drive'], 'true');
  assert.equal(s['drive-path'], '/mnt/guacd/home/alice');
  assert.equal(s['drive-name'], 'Home');
  assert.equal(s['create-drive-path'], 'true');
  assert.equal(s['disable-download'], 'true');
  assert.equal(s['disable-upload'], 'false');
  const lab = home.drive({ name: 'q', share: 'lab' }, 'bob');
  assert.equal(lab.path, '/srv/lab/bob');
  assert.deepEqual([lab.download, lab.upload], [true, true]);
  assert.throws(() => home.drive({ name: 'r', share: 'nope' }, 'bob'), { code: 'share_unavailable' });
  // the spec a desktop is built with for its holder; none for a desktop nobody holds
  assert.deepEqual(home.homeOf({ user: 'alice' }, { name: 'p' }), { path: '/srv/home/alice', unc: '\\\\files\\home\\alice' });
  assert.equal(home.homeOf({ user: '' }, { name: 'p' }), undefined);
  // VNC consoles have no drive
  assert.equal(consoleSettings({ protocol: 'vnc', host: 'h', port: 5900 }, home.drive({ name: 'p' }, 'alice'))['enable-drive'], undefined);
});
