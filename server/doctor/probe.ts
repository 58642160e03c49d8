// A TCP connection attempt that tells the usual firewall answers apart: open, refused (nothing
// listens, or a REJECT rule: the host answered RST), filtered (no answer at all within the time:
// a DROP rule or a black hole), unreachable (no route, ICMP host/network unreachable), or a name
// that does not resolve.
import net from 'node:net';

export type PortState = 'open' | 'refused' | 'filtered' | 'unreachable' | 'unresolved' | 'error';

export interface PortProbe {
  state: PortState;
  ms: number;
  code?: string;
}

export function probePort(host: string, port: number, timeoutMs: number): Promise<PortProbe> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const sock = net.createConnection({ host, port });
    let done = false;
    const finish = (state: PortState, code?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ state, ms: Math.round(performance.now() - t0), ...(code ? { code } : {}) });
    };
    const timer = setTimeout(() => finish('filtered', 'ETIMEDOUT'), timeoutMs);
    sock.once('connect', () => finish('open'));
    sock.once('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? 'ERROR';
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET') finish('refused', code);
      else if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') finish('unreachable', code);
      else if (code === 'ETIMEDOUT') finish('filtered', code);
      else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') finish('unresolved', code);
      else finish('error', code);
    });
  });
}

/** Plain words for a probe that did not connect. */
export function describePort(what: string, host: string, port: number, p: PortProbe, timeoutMs: number): string {
  switch (p.state) {
    case 'open': return `${what} ${host}:${port} answers (${p.ms} ms)`;
    case 'refused': return `${what} ${host}:${port} refused the connection: the host answered but nothing listens on that port (service stopped) or a firewall rejects it`;
    case 'filtered': return `${what} ${host}:${port} did not answer within ${timeoutMs} ms: a firewall drops the packets (filtered) or the host is down`;
    case 'unreachable': return `${what} ${host}:${port} is unreachable (${p.code}): no route to that host from the broker`;
    case 'unresolved': return `${what} host name ${host} does not resolve (${p.code})`;
    default: return `${what} ${host}:${port} failed (${p.code})`;
  }
}

export function portFix(p: PortProbe, service: string, port: number): string {
  switch (p.state) {
    case 'refused': return `Start ${service} (or check it listens on port ${port}); if it runs, look for a REJECT rule on that port.`;
    case 'filtered': return `Allow TCP ${port} from the broker to ${service} in the host and network firewalls (a DROP rule or a security group blocks it), or check the host is up.`;
    case 'unreachable': return `Fix routing between the broker and ${service} (gateway, VLAN, VPN), or correct the address.`;
    case 'unresolved': return `Correct the host name of ${service} or fix DNS on the broker host.`;
    default: return `Check ${service} and the network between it and the broker.`;
  }
}
