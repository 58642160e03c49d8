// "Does smbd answer?": one SMB2 NEGOTIATE over TCP, the first thing every client sends. An
// open port is not enough (a stuck smbd still accepts connections); a negotiate answer is.
import net from 'node:net';

/** SMB2 dialects offered: 2.1, 3.0, 3.0.2 (what the guests' cifs mount uses). */
const DIALECTS = [0x0210, 0x0300, 0x0302];

function negotiateRequest(): Buffer {
  const header = Buffer.alloc(64);
  header.write('\xfeSMB', 0, 'latin1');
  header.writeUInt16LE(64, 4); // structure size
  header.writeUInt16LE(1, 14); // credits requested
  const body = Buffer.alloc(36 + DIALECTS.length * 2);
  body.writeUInt16LE(36, 0); // structure size
  body.writeUInt16LE(DIALECTS.length, 2);
  body.writeUInt16LE(1, 4); // signing enabled
  DIALECTS.forEach((d, i) => body.writeUInt16LE(d, 36 + i * 2));
  const len = header.length + body.length;
  const nb = Buffer.from([0, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff]);
  return Buffer.concat([nb, header, body]);
}

/** Resolves with the dialect smbd chose; rejects when it does not answer a negotiate within timeoutMs. */
export function smbNegotiate(host: string, port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, dialect = 0) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(dialect);
    };
    const timer = setTimeout(() => done(new Error(`smbd at ${host}:${port} did not answer a negotiate within ${timeoutMs} ms`)), timeoutMs);
    sock.once('connect', () => sock.write(negotiateRequest()));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > 65_536 + 4) return done(new Error('smbd answered with an oversized negotiate'));
      if (buf.length < 4) return;
      const len = buf.readUIntBE(1, 3);
      if (buf.length < 4 + len) return;
      const m = buf.subarray(4, 4 + len);
      if (m.length < 64 + 6 || m.toString('latin1', 0, 4) !== '\xfeSMB') return done(new Error('not an SMB2 answer'));
      const status = m.readUInt32LE(8);
      if (status !== 0) return done(new Error(`SMB2 negotiate failed with status 0x${status.toString(16)}`));
      done(null, m.readUInt16LE(64 + 4));
    });
    sock.once('error', (e) => done(e));
    sock.once('close', () => done(new Error(`smbd at ${host}:${port} closed the connection`)));
  });
}
