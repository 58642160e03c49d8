// Forged and malformed guest agent messages change nothing and are counted
// (vdi_agent_messages_dropped_total{reason}): first against the channel code over a real unix
// socket (a hand-written "guest" on the other end), then from inside a real guest (QEMU, TCG)
// whose root shell on the serial console writes to the agent port through the agent's event
// FIFO. One VM for the file, stopped by pid (TestEnv.cleanup), also on failure.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { VdiChannel, helloProof, MAX_LINE_BYTES, type DropReason } from '../../server/agent/index.ts';
import { Metrics } from '../../server/observability/index.ts';
import { ensureDemoImage, makeSpec, SerialShell, TestEnv, waitFor } from '../qemu/helpers.ts';

const log = pino({ level: process.env.VDI_TEST_LOG ?? 'silent' });

function dropCounter(): { metrics: Metrics; drop: (r: DropReason) => void; count: (r: DropReason) => Promise<number> } {
  const metrics = new Metrics({ defaultMetrics: false });
  return {
    metrics,
    drop: (r) => metrics.agentMessagesDropped.inc({ reason: r }),
    count: async (r) => (await metrics.agentMessagesDropped.get()).values.find((v) => v.labels.reason === r)?.value ?? 0,
  };
}

describe('over a real unix socket', () => {
  const SECRET = 'a1'.repeat(32);
  const ID = 'd-forged-1';
  let dir: string;
  let server: net.Server;
  let guest: net.Socket | undefined;
  const challenges: string[] = [];
  const c = dropCounter();
  let ch: VdiChannel;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-forged-'));
    const sock = path.join(dir, 'agent.sock');
    server = net.createServer((s) => {
      guest = s;
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const m = JSON.parse(buf.slice(0, i)) as { type: string; nonce?: string };
          buf = buf.slice(i + 1);
          if (m.type === 'challenge' && m.nonce) challenges.push(m.nonce);
        }
      });
    });
    await new Promise<void>((r) => server.listen(sock, () => r()));
    ch = new VdiChannel({
      desktop: ID, secret: SECRET, log, drop: c.drop, challengeEveryMs: 100,
      connect: () => new Promise((resolve, reject) => {
        const s = net.createConnection(sock, () => resolve(s));
        s.once('error', reject);
      }),
    });
    ch.start();
    await waitFor(() => (challenges.length >= 4 ? true : undefined), 10_000, 'challenges from the channel');
  });
  after(async () => {
    ch?.close();
    guest?.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function sendAndCount(reason: DropReason, data: Buffer | string): Promise<void> {
    const before = await c.count(reason);
    guest!.write(data);
    await waitFor(async () => ((await c.count(reason)) > before ? true : undefined), 10_000, `a drop counted as ${reason}`);
    assert.equal(ch.hello, undefined, `no hello accepted after a message dropped as ${reason}`);
  }
  const hello = (o: { desktop?: string; nonce: string; secret?: string; proofFor?: string }) =>
    `${JSON.stringify({ v: 1, type: 'hello', desktop: o.desktop ?? ID, nonce: o.nonce, proof: helloProof(o.nonce, o.proofFor ?? o.desktop ?? ID, o.secret ?? SECRET), agent: 'forger', boot: 'b' })}\n`;

  test('forged hellos (wrong secret, another desktop\'s id, a nonce never issued, a reused nonce) are refused and counted', async () => {
    const [n1, n2] = challenges;
    await sendAndCount('bad_proof', hello({ nonce: n1!, secret: 'b2'.repeat(32) }));
    // The right secret for another desktop's id: this channel belongs to ID.
    await sendAndCount('wrong_desktop', hello({ desktop: 'd-forged-2', nonce: n2! }));
    await sendAndCount('unknown_nonce', hello({ nonce: 'f'.repeat(32) }));
    // n1 was spent by the failed attempt: a correct proof on it is a replay.
    await sendAndCount('unknown_nonce', hello({ nonce: n1! }));
    assert.equal(ch.hello, undefined, 'no forged hello was accepted: the channel is still unauthenticated');
  });

  test('garbage, a 1 MiB line, invalid UTF-8, other versions and types, and messages before hello are dropped and counted', async () => {
    await sendAndCount('malformed', 'this is not json\n');
    await sendAndCount('malformed', '[1,2,3]\n');
    await sendAndCount('oversized', Buffer.concat([Buffer.alloc(1024 * 1024, 'a'), Buffer.from('\n')]));
    assert.ok(1024 * 1024 > MAX_LINE_BYTES);
    await sendAndCount('invalid_utf8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]));
    await sendAndCount('version', '{"v":2,"type":"hello"}\n');
    await sendAndCount('unknown_type', '{"v":1,"type":"make_me_admin"}\n');
    await sendAndCount('unauthenticated', '{"v":1,"type":"event","event":"session_end","user":"alice"}\n');
    await sendAndCount('unauthenticated', '{"v":1,"type":"result","id":"x","ok":true}\n');
  });

  test('the channel still works afterwards: a real hello is accepted, and replaying it changes nothing', async () => {
    const fresh = challenges.at(-1)!;
    guest!.write(hello({ nonce: fresh }).replace('"forger"', '"real"'));
    const h = await ch.waitHello(10_000);
    assert.equal(h.agent, 'real');
    const before = await c.count('unknown_nonce');
    guest!.write(hello({ nonce: fresh }));
    await waitFor(async () => ((await c.count('unknown_nonce')) > before ? true : undefined), 10_000, 'the replay counted');
    assert.equal(ch.hello, h, 'the accepted hello is unchanged');
    assert.equal(ch.hello?.agent, 'real');
  });
});

describe('from inside a real guest', () => {
  const env = new TestEnv('forged');
  const spec = { ...makeSpec('forged'), agentSecret: 'c4'.repeat(32) };
  const c = dropCounter();
  let ch: VdiChannel;
  let sh: SerialShell;

  before(async () => {
    ensureDemoImage();
    const p = env.provider([env.host('h1')]);
    await p.create(spec);
    await p.start(spec.id);
    ch = new VdiChannel({ desktop: spec.id, secret: spec.agentSecret, log, drop: c.drop, connect: async () => (await p.agentChannels(spec.id)).vdi!() });
    ch.start();
    await ch.waitHello(240_000);
    sh = await SerialShell.open((await p.serial(spec.id)).socket, 120_000);
  });
  after(async () => {
    ch?.close();
    sh?.close();
    await env.cleanup();
  });

  test('root in the guest writing forged hellos, garbage, invalid UTF-8 and a 1 MiB line to the agent port changes nothing', async () => {
    const h = ch.hello!;
    assert.equal(h.agent, 'vdi-agent-sh/1');
    // The agent's event FIFO is relayed verbatim to its port: what root inside the guest sends.
    const fifo = '/run/vdi/events.fifo';
    const expect: Array<[DropReason, string]> = [
      ['wrong_desktop', `printf '%s\\n' '{"v":1,"type":"hello","desktop":"another-desktop","nonce":"${'0'.repeat(32)}","proof":"${'0'.repeat(64)}","agent":"evil","boot":"x"}' > ${fifo}`],
      ['unknown_nonce', `printf '%s\\n' '{"v":1,"type":"hello","desktop":"${spec.id}","nonce":"${'0'.repeat(32)}","proof":"${'0'.repeat(64)}","agent":"evil","boot":"x"}' > ${fifo}`],
      ['malformed', `printf 'rm -rf /\\n' > ${fifo}`],
      ['invalid_utf8', `printf '{\\377\\376}\\n' > ${fifo}`],
      ['oversized', `{ head -c 1048576 /dev/zero | tr '\\000' a; echo; } > ${fifo}`],
    ];
    for (const [reason, cmd] of expect) {
      const before = await c.count(reason);
      await sh.run(cmd, 60_000);
      await waitFor(async () => ((await c.count(reason)) > before ? true : undefined), 60_000, `a drop counted as ${reason}`);
    }
    assert.equal(ch.hello, h, 'the accepted hello is unchanged');
    assert.equal(ch.hello?.agent, 'vdi-agent-sh/1');
    // The channel still carries requests.
    const r = await ch.request('ping', {}, 30_000);
    assert.equal(r.ok, true);
    assert.equal(r.body.boot, h.boot);
  });
});
