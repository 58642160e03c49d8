// guacamole-common-js's WebSocketTunnel, with the connection ticket handed over as the
// WebSocket's first message instead of in the URL, where proxy logs and browser history would
// keep it (docs/streaming.md). WebSocketTunnel builds `new WebSocket(url + '?' + data,
// 'guacamole')` itself and offers no hook, so during its connect() — synchronous — the global
// WebSocket is the subclass below, which sends the ticket the moment the socket opens. Nothing
// can come before it: guacamole-common-js sends nothing until the server's first instruction.
import Guacamole from 'guacamole-common-js';

/** The internal-opcode instruction the tunnel expects first (server/tunnel/handover.ts). */
export function ticketInstruction(ticket: string): string {
  return `0.,6.ticket,${ticket.length}.${ticket};`;
}

export function ticketTunnel(url: string, ticket: string): Guacamole.WebSocketTunnel {
  const tunnel = new Guacamole.WebSocketTunnel(url);
  const t = tunnel as unknown as { connect(data?: string): void };
  const connect = t.connect.bind(tunnel);
  t.connect = (data) => {
    const Native = globalThis.WebSocket;
    class TicketSocket extends Native {
      constructor(u: string | URL, protocols?: string | string[]) {
        super(u, protocols);
        this.addEventListener('open', () => this.send(ticketInstruction(ticket)), { once: true });
      }
    }
    globalThis.WebSocket = TicketSocket;
    try {
      connect(data);
    } finally {
      globalThis.WebSocket = Native;
    }
  };
  return tunnel;
}
