import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BrokerError } from '../../errors.ts';
import type { LibvirtHostConfig } from './config.ts';

// Every libvirt call is one `virsh -c URI ...` subprocess: an argument array (never a shell),
// a timeout that kills it, stdin for input when needed. A new connection per call means a
// restarted daemon is simply reached again by the next call; connection failures are retried
// with backoff and recorded as the host's reachability.

export type LibvirtFailure = 'unreachable' | 'no_domain' | 'no_pool' | 'no_volume' | 'no_snapshot' | 'timeout' | 'failed';

/** A libvirt failure: a provider_error for the API, with what kind of failure it was for the driver. */
export class LibvirtError extends BrokerError {
  constructor(readonly failure: LibvirtFailure, message: string, readonly host: string) {
    super('provider_error', message);
  }
}

export function isFailure(e: unknown, ...kinds: LibvirtFailure[]): boolean {
  return e instanceof LibvirtError && kinds.includes(e.failure);
}

/** Secrets never leave in an error message (libvirt may quote XML it rejected). */
export function redact(text: string): string {
  return text.replace(/(passwd\s*=\s*)(['"])[^'"]*\2/gi, '$1$2***$2').replace(/(vnc:\/\/:)[^@]*@/g, '$1***@');
}

function classify(stderr: string): LibvirtFailure {
  if (/failed to connect to the hypervisor|unable to connect to server|Cannot recv data|End of file while reading data|Connection refused|No such file or directory.*sock|Cannot write data|client socket is closed|unable to connect/i.test(stderr)) return 'unreachable';
  if (/Domain not found|failed to get domain/i.test(stderr)) return 'no_domain';
  if (/Storage pool not found|failed to get pool/i.test(stderr)) return 'no_pool';
  if (/Storage volume not found|failed to get vol/i.test(stderr)) return 'no_volume';
  if (/snapshot not found|no domain snapshot with matching name/i.test(stderr)) return 'no_snapshot';
  return 'failed';
}

/** The ssh wrappers' folder (0700), made on first use and removed when the process exits. */
let wrapperDir: string | undefined;
let wrapperCount = 0;
function privateDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-virsh-ssh-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** What of a host's config makes its connection URI. */
export type SshHost = Pick<LibvirtHostConfig, 'uri' | 'sshKey' | 'sshKnownHosts' | 'sshVerifyHostKey' | 'tlsDir'>;

export interface HostReachability {
  reachable: boolean;
  since: string;
  lastError?: string;
}

export interface CallOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  /** Retries on connection failures (default 2; 0 for calls that must not be repeated). */
  retries?: number;
  signal?: AbortSignal;
}

export class Virsh {
  private readonly state = new Map<string, HostReachability>();
  /** Called when a host's reachability flips (logging, tests). */
  onReachability?: (host: string, r: HostReachability) => void;

  constructor(private readonly binary = 'virsh', private readonly defaultTimeoutMs = 30_000) {}

  /**
   * The URI virsh connects with: credential files become URI parameters. For qemu+ssh, ssh
   * runs in batch mode (no_tty=1: never a password or host-key prompt); `sshCommand` is the
   * ssh wrapper that checks host keys against the host's sshKnownHosts file.
   */
  static connectUri(h: SshHost, sshCommand?: string): string {
    const extra: string[] = [];
    const param = (k: string) => new RegExp(`[?&]${k}=`).test(h.uri);
    if (/^[a-z0-9]+\+ssh:/i.test(h.uri)) {
      if (h.sshKey) extra.push(`keyfile=${encodeURIComponent(h.sshKey)}`);
      if (!param('no_tty')) extra.push('no_tty=1');
      if (h.sshVerifyHostKey === false) extra.push('no_verify=1');
      else if (sshCommand && !param('command')) extra.push(`command=${encodeURIComponent(sshCommand)}`);
    }
    if (h.tlsDir && /^[a-z0-9]+\+tls:/i.test(h.uri)) extra.push(`pkipath=${encodeURIComponent(h.tlsDir)}`);
    if (!extra.length) return h.uri;
    return `${h.uri}${h.uri.includes('?') ? '&' : '?'}${extra.join('&')}`;
  }

  /** The URI of a host as this broker reaches it (with the known_hosts wrapper when configured). */
  uriOf(h: SshHost): string {
    const wrap = h.sshKnownHosts && h.sshVerifyHostKey !== false && /^[a-z0-9]+\+ssh:/i.test(h.uri) ? this.sshWrapper(h.sshKnownHosts) : undefined;
    return Virsh.connectUri(h, wrap);
  }

  private wrappers = new Map<string, string>();

  /**
   * libvirt's ssh transport runs `ssh` with its own arguments and a cleared environment, so the
   * known_hosts file is given to ssh by a small wrapper (libvirt's `command=`): only that file
   * counts (StrictHostKeyChecking=yes, no global file), an unknown or changed key is refused.
   */
  private sshWrapper(knownHosts: string): string {
    const known = this.wrappers.get(knownHosts);
    if (known) return known;
    const dir = (wrapperDir ??= privateDir());
    const n = wrapperCount++;
    const file = path.join(dir, `ssh-${n}`);
    // ssh splits UserKnownHostsFile at whitespace and expands % and ~ in it: it gets a plain
    // link name of ours pointing at the configured file (read afresh by every ssh).
    const link = path.join(dir, `known_hosts-${n}`);
    fs.symlinkSync(path.resolve(knownHosts), link);
    const sh = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
    fs.writeFileSync(file, `#!/bin/sh\nexec ssh -o StrictHostKeyChecking=yes -o ${sh(`UserKnownHostsFile=${link}`)} -o GlobalKnownHostsFile=/dev/null "$@"\n`, { mode: 0o700 });
    this.wrappers.set(knownHosts, file);
    return file;
  }

  /**
   * The ssh command line (binary first) that runs `remote` on a qemu+ssh host with the same
   * user, port, key and host-key checking as libvirt's connection to it: batch mode (never a
   * prompt), no tty, no escape character.
   */
  sshCommand(h: SshHost, remote: string): string[] {
    const m = /^[a-z0-9]+\+(?:ssh|libssh2?):\/\/(?:([^@/?]*)@)?(\[[^\]]+\]|[^:/?]*)(?::(\d+))?[^?]*(?:\?(.*))?$/i.exec(h.uri);
    if (!m) throw new LibvirtError('failed', `Host URI ${h.uri} is not an ssh URI.`, '');
    const params = new URLSearchParams(m[4] ?? '');
    const key = h.sshKey ?? params.get('keyfile') ?? undefined;
    const noVerify = h.sshVerifyHostKey === false || params.get('no_verify') === '1';
    const args = ['-T', '-e', 'none', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15'];
    if (m[3]) args.push('-p', m[3]);
    if (m[1]) args.push('-l', decodeURIComponent(m[1]));
    if (key) args.push('-i', key);
    let bin = params.get('command') ?? 'ssh';
    if (noVerify) args.push('-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null');
    else if (h.sshKnownHosts) bin = this.sshWrapper(h.sshKnownHosts);
    return [bin, ...args, '--', m[2]!.replace(/^\[|\]$/g, ''), remote];
  }

  reachability(host: string): HostReachability {
    return this.state.get(host) ?? { reachable: true, since: new Date(0).toISOString() };
  }

  /** Runs `virsh -c URI args...` on a host; resolves its stdout or throws a LibvirtError. */
  async run(host: SshHost & Pick<LibvirtHostConfig, 'name'>, args: string[], opts: CallOptions = {}): Promise<string> {
    const retries = opts.retries ?? 2;
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await this.once(host, args, opts);
        this.mark(host.name, true);
        return out;
      } catch (e) {
        const err = e as LibvirtError;
        if (err.failure !== 'unreachable' && err.failure !== 'timeout') this.mark(host.name, true);
        if (err.failure === 'unreachable' && attempt < retries && !opts.signal?.aborted) {
          await new Promise((r) => setTimeout(r, 250 * 3 ** attempt));
          continue;
        }
        if (err.failure === 'unreachable' || (err.failure === 'timeout' && args[0] !== 'migrate')) this.mark(host.name, false, err.message);
        throw err;
      }
    }
  }

  private mark(host: string, reachable: boolean, lastError?: string): void {
    const prev = this.state.get(host);
    if (prev && prev.reachable === reachable) {
      if (lastError) prev.lastError = lastError;
      return;
    }
    const r: HostReachability = { reachable, since: new Date().toISOString(), ...(lastError ? { lastError } : {}) };
    this.state.set(host, r);
    if (prev || !reachable) this.onReachability?.(host, r);
  }

  private once(host: SshHost & Pick<LibvirtHostConfig, 'name'>, args: string[], opts: CallOptions): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise((resolve, reject) => {
      // -q: no "Domain X started" chatter; LC_ALL=C: messages we can classify.
      const child = spawn(this.binary, ['-q', '-c', this.uriOf(host), ...args], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C', LIBVIRT_DEFAULT_URI: '' },
      });
      let out = '';
      let err = '';
      let timedOut = false;
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-8000)));
      const kill = () => child.kill('SIGKILL');
      const timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, timeoutMs);
      opts.signal?.addEventListener('abort', kill, { once: true });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new LibvirtError('failed', `virsh could not run on host ${host.name}: ${e.message}`, host.name));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', kill);
        if (code === 0) return resolve(out);
        const what = `virsh ${args[0]} on host ${host.name}`;
        if (timedOut) return reject(new LibvirtError('timeout', `${what} did not answer within ${timeoutMs} ms.`, host.name));
        if (opts.signal?.aborted) return reject(new LibvirtError('failed', `${what} was cancelled.`, host.name));
        const msg = redact(err.replace(/^error:\s*/gm, '').replace(/\s+/g, ' ').trim()) || `exit code ${code}`;
        const failure = classify(err);
        const prefix = failure !== 'unreachable' ? `${what} failed`
          : /Permission denied \((publickey|password)|Too many authentication failures/i.test(err) ? `libvirt on host ${host.name} is unreachable: SSH authentication failed (check sshKey)`
            : /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(err) ? `libvirt on host ${host.name} is unreachable: SSH host key not verified (check sshKnownHosts)`
              : `libvirt on host ${host.name} is unreachable`;
        reject(new LibvirtError(failure, `${prefix}: ${msg}`, host.name));
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
    });
  }
}
