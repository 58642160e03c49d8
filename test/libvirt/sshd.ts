import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '../support/harness.ts';
import { freePort } from '../support/redis.ts';
import { stopChild } from '../support/process.ts';

// An sshd of the test's own: loopback, a free port, private config and host key, root by key
// only. Stopped by the test through stop() (by its pid).

const pexec = promisify(execFile);

export interface TestSshd {
  port: number;
  /** Private key sshd accepts, and a known_hosts file with sshd's host key. */
  key: string;
  knownHosts: string;
  stop(): Promise<void>;
}

/** `pathFirst`: a directory put first in the sessions' PATH (e.g. a `date` that lies). */
export async function startSshd(dir: string, o: { pathFirst?: string } = {}): Promise<TestSshd> {
  const file = (n: string) => path.join(dir, n);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const n of ['host_key', 'client_key']) await pexec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', n, '-f', file(n)]);
  fs.copyFileSync(file('client_key.pub'), file('authorized_keys'));
  const port = await freePort();
  fs.writeFileSync(file('known_hosts'), `[127.0.0.1]:${port} ${fs.readFileSync(file('host_key.pub'), 'utf8')}`);
  fs.writeFileSync(file('sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${file('host_key')}`, `AuthorizedKeysFile ${file('authorized_keys')}`,
    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'StrictModes no', 'UsePAM no',
    `PidFile ${file('sshd.pid')}`,
    // SetEnv overrides the session's environment.
    ...(o.pathFirst ? [`SetEnv PATH=${o.pathFirst}:/usr/local/bin:/usr/bin:/bin`] : []), '',
  ].join('\n'));
  fs.mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege-separation directory
  const sshd: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', file('sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  sshd.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const stop = () => stopChild(sshd);
  try {
    await waitFor(async () => {
      if (sshd.exitCode !== null) throw new Error(`sshd exited: ${err}`);
      return new Promise<boolean>((r) => net.connect(port, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); r(true); }).once('error', () => r(false)));
    }, 10_000, 50);
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, key: file('client_key'), knownHosts: file('known_hosts'), stop };
}
