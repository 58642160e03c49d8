// How a ticket reaches the tunnel, and from where. Never in the URL (proxy logs, browser
// history): the client sends it as the WebSocket's first message, the Guacamole instruction
// `0.,6.ticket,43.<ticket>;` (internal opcode, like the tunnel's `ping`), before anything else.
// guacamole-common-js sends nothing until the server speaks, so the message is always first.
// And the WebSocket must come from an allowed Origin (cross-site WebSocket hijacking).
import type { IncomingMessage } from 'node:http';
import type { WsSocket } from './lite.ts';

/** How long the client has to send its ticket after the upgrade. */
export const TICKET_WAIT_MS = 10_000;
/** What a client may send after its ticket and before the tunnel relays it (guacamole-lite's pre-`ready` bound). */
const HELD_LIMIT_BYTES = 64 * 1024;
const TICKET_MESSAGE = /^0\.,6\.ticket,(\d{1,3})\.([^;]*);$/;

/** The ticket in a first message, '' if that message is not exactly one ticket instruction. */
export function ticketOf(message: Buffer): string {
  if (message.length > 512) return '';
  const m = TICKET_MESSAGE.exec(message.toString('utf8'));
  return m && Number(m[1]) === m[2]!.length ? m[2]! : '';
}

/** Listens from the upgrade on: the first message is the ticket; later ones are held, bounded. */
export class TicketHandover {
  /** The ticket; '' when the first message was something else; null when none came in time or the socket closed. */
  readonly ticket: Promise<string | null>;
  /** More than HELD_LIMIT_BYTES followed the ticket before the tunnel opened. */
  overrun = false;
  private readonly held: Buffer[] = [];
  private bytes = 0;
  private first: ((t: string | null) => void) | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly onMessage = (d: Buffer) => {
    if (this.first) {
      const f = this.first;
      this.first = undefined;
      return f(ticketOf(d));
    }
    this.bytes += d.length;
    // Refused after the ticket check rather than silently cut: a dropped instruction would corrupt the stream.
    if (this.bytes > HELD_LIMIT_BYTES) this.overrun = true;
    else this.held.push(d);
  };
  private readonly onClose = () => this.end(null);

  constructor(private readonly ws: WsSocket, waitMs = TICKET_WAIT_MS) {
    this.ticket = new Promise((resolve) => (this.first = resolve));
    this.timer = setTimeout(() => this.end(null), waitMs);
    ws.on('message', this.onMessage);
    ws.once('close', this.onClose);
  }

  private end(t: string | null): void {
    const f = this.first;
    this.first = undefined;
    f?.(t);
  }

  /** Stops listening; returns the messages that followed the ticket, in order, to relay. */
  release(): Buffer[] {
    clearTimeout(this.timer);
    this.end(null);
    this.ws.off('message', this.onMessage);
    this.ws.off('close', this.onClose);
    return this.held.splice(0);
  }
}

export interface OriginPolicy {
  /** server.publicUrl: its origin is the broker's own; '' = the request's Host (same origin). */
  publicUrl: string;
  /** tunnel.allowedOrigins: more origins whose pages may open tunnels (thin-client shells). */
  allowedOrigins: string[];
}

/**
 * Whether the upgrade's Origin may open a tunnel. Browsers always send an Origin with a
 * WebSocket, so a missing one is not a browser: allowed only for an API-key client
 * (`Authorization` header, not a credential a browser adds by itself); with a cookie it is
 * refused. `null` (sandboxed frames, files) and anything unparsable are foreign.
 */
export function originAllowed(req: IncomingMessage, policy: OriginPolicy): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return req.headers.authorization !== undefined;
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false;
  }
  if (!/^https?:$/.test(o.protocol)) return false;
  if (policy.allowedOrigins.some((a) => new URL(a).origin === o.origin)) return true;
  if (policy.publicUrl) return new URL(policy.publicUrl).origin === o.origin;
  // Same origin: the page came from the host this request was sent to (scheme's default port folded).
  try {
    return !!req.headers.host && new URL(`${o.protocol}//${req.headers.host}`).host === o.host;
  } catch {
    return false;
  }
}

/**
 * The client's address as express's `req.ip` gives it for API requests (proxy-addr's rule:
 * walk X-Forwarded-For from the nearest hop while the hop is trusted), so audit entries of
 * the tunnel name the same address behind a reverse proxy. `trust`: the app's `trust proxy fn`.
 */
export function clientAddress(req: IncomingMessage, trust?: (addr: string, hop: number) => boolean): string {
  const addrs = [req.socket.remoteAddress ?? ''];
  if (trust) addrs.push(...String(req.headers['x-forwarded-for'] ?? '').split(',').map((s) => s.trim()).filter(Boolean).reverse());
  for (let i = 0; i < addrs.length - 1; i++) if (!trust!(addrs[i]!, i)) return addrs[i]!;
  return addrs[addrs.length - 1]!;
}
