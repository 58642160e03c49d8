// How the doctor reaches a libvirt host itself (not its libvirtd): a URI without a host name
// (qemu:///system, qemu+unix:///system?socket=...) is this machine; a qemu+ssh URI is reached
// with the same ssh user, port, key and host-key checking the driver's connection uses; libvirt's
// TCP/TLS protocol runs no commands on the host, so those hosts cannot be looked at here.
import { spawn } from 'node:child_process';
import type { Virsh, SshHost } from '../providers/libvirt/virsh.ts';

export type HostRoute = 'local' | 'ssh' | 'none';

/** local: this machine; ssh: commands over the driver's ssh transport; none: no way to run a command there. */
export function hostRoute(uri: string): HostRoute {
  const m = /^[a-z0-9]+(?:\+([a-z0-9]+))?:\/\/([^/?]*)/i.exec(uri);
  if (!m) return 'none';
  const transport = (m[1] ?? '').toLowerCase();
  const authority = m[2] ?? '';
  if (transport === 'unix' || (transport === '' && authority === '')) return 'local';
  if (transport === 'ssh' || transport === 'libssh' || transport === 'libssh2') return 'ssh';
  return 'none';
}

/** Output of a line protocol with a host: `onLine` answers each line (or returns undefined). */
export interface HostDialogue {
  lines: string[];
  stderr: string;
}

/**
 * Runs `remote` (a POSIX shell line) on a qemu+ssh host and talks to it line by line: every line
 * it prints goes to onLine, whose answer (if any) is written to its standard input. Killed after
 * timeoutMs. Rejects with ssh's own last words when the command fails.
 */
export function sshDialogue(virsh: Virsh, h: SshHost, remote: string, timeoutMs: number, onLine: (line: string, n: number) => string | undefined): Promise<HostDialogue> {
  const [bin, ...args] = virsh.sshCommand(h, remote);
  return new Promise((resolve, reject) => {
    const child = spawn(bin!, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const lines: string[] = [];
    let buf = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        lines.push(line);
        const answer = onLine(line, lines.length - 1);
        if (answer !== undefined) child.stdin.write(answer);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`ssh could not run: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      if (timedOut) return reject(new Error(`the host did not answer over ssh within ${timeoutMs} ms`));
      if (code !== 0) return reject(new Error(`ssh to the host failed (exit ${code}): ${stderr.replace(/\s+/g, ' ').trim() || 'no message'}`));
      if (buf) lines.push(buf);
      resolve({ lines, stderr });
    });
  });
}
