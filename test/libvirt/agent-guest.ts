import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';

// Guest side for the libvirt agent tests: the qga-only image (scripts/image/build-qga-image.sh),
// and the host side of our agent's handshake and of qga commands, as raw streams.

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The image with only qemu-guest-agent (scripts/image/build-qga-image.sh) in dir. */
export function buildQgaImage(dir: string): string {
  if (!fs.existsSync(path.join(dir, 'manifest.json'))) execFileSync('bash', [path.join(REPO, 'scripts/image/build-qga-image.sh'), dir], { stdio: 'pipe' });
  return dir;
}

/** The design's proof: hex sha256 of '<nonce>:<desktop id>:<secret>'. */
export function proofOf(nonce: string, desktopId: string, secret: string): string {
  return crypto.createHash('sha256').update(`${nonce}:${desktopId}:${secret}`).digest('hex');
}

export interface Hello {
  v: number;
  type: string;
  desktop: string;
  nonce: string;
  proof: string;
  agent: string;
  boot: string;
}

/**
 * The host side of the handshake, as the broker does it: a challenge on connect and every second
 * until a hello for one of the issued nonces comes back. Rejects on timeout or when the stream closes.
 */
export function handshake(stream: Duplex, timeoutMs: number): Promise<{ hello: Hello; issued: Set<string>; ms: number }> {
  const t0 = Date.now();
  const issued = new Set<string>();
  return new Promise((resolve, reject) => {
    let buf = '';
    const challenge = () => {
      const nonce = crypto.randomBytes(16).toString('hex');
      issued.add(nonce);
      stream.write(`${JSON.stringify({ v: 1, type: 'challenge', nonce })}\n`);
    };
    const done = (e?: Error, hello?: Hello) => {
      clearInterval(tick);
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('close', onClose);
      if (e) reject(e);
      else resolve({ hello: hello!, issued, ms: Date.now() - t0 });
    };
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const m = JSON.parse(line) as Hello;
          if (m.type === 'hello' && issued.has(m.nonce)) return done(undefined, m);
        } catch {
          // not a message of ours
        }
      }
    };
    const onClose = () => done(new Error('agent stream closed before the hello'));
    const tick = setInterval(challenge, 1000);
    const timer = setTimeout(() => done(new Error(`no hello within ${timeoutMs} ms`)), timeoutMs);
    stream.on('data', onData);
    stream.once('close', onClose);
    challenge();
  });
}

/** Sends one qga command over a stream and resolves its reply (after a 0xFF delimiter when asked). */
export function qgaCommand(stream: Duplex, cmd: unknown, timeoutMs = 20_000): Promise<{ raw: Buffer; reply: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      stream.off('data', onData);
      reject(new Error(`no qga reply to ${JSON.stringify(cmd)}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(10);
      if (nl < 0) return;
      clearTimeout(timer);
      stream.off('data', onData);
      const raw = buf.subarray(0, nl);
      resolve({ raw, reply: JSON.parse(raw.subarray(raw[0] === 0xff ? 1 : 0).toString('utf8')) as Record<string, unknown> });
    };
    stream.on('data', onData);
    stream.write(JSON.stringify(cmd));
  });
}
