// An instrumented guacd for tunnel tests: speaks guacd's side of the handshake, records what
// each connection selected and the `connect` values it received (by name), answers `ready`,
// then sends a `size` and a `sync` frame, relays nothing and records client instructions.
import net from 'node:net';
import { encode, InstructionParser, type Instruction } from '../../../server/gateway/protocol.ts';

export const FAKE_ARGS = ['hostname', 'port', 'read-only', 'encodings', 'password', 'swap-red-blue', 'color-depth', 'cursor', 'autoretry', 'clipboard-encoding', 'disable-copy', 'disable-paste'];

export interface FakeGuacdConnection {
  id: string;
  select: string;
  /** connect values by argument name (VERSION_ first element dropped). */
  args: Record<string, string>;
  received: Instruction[];
  socket: net.Socket;
}

export class FakeGuacd {
  readonly connections: FakeGuacdConnection[] = [];
  /** TCP connections accepted (also those that never finished a handshake). */
  accepted = 0;
  private readonly sockets = new Set<net.Socket>();
  private n = 0;

  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(): Promise<FakeGuacd> {
    let self: FakeGuacd | undefined;
    const server = net.createServer((s) => self!.onSocket(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    self = new FakeGuacd(server, (server.address() as net.AddressInfo).port);
    return self;
  }

  private onSocket(socket: net.Socket): void {
    this.accepted++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const parser = new InstructionParser(1 << 20);
    let conn: FakeGuacdConnection | undefined;
    let select = '';
    const nop = setInterval(() => socket.write(encode('nop')), 2000);
    socket.on('close', () => clearInterval(nop));
    socket.on('data', (d: Buffer) => {
      for (const ins of parser.push(d)) {
        if (ins.opcode === 'select') {
          select = ins.args[0] ?? '';
          socket.write(encode('args', 'VERSION_1_5_0', ...FAKE_ARGS));
        } else if (ins.opcode === 'connect') {
          const args: Record<string, string> = {};
          FAKE_ARGS.forEach((name, i) => (args[name] = ins.args[i + 1] ?? ''));
          const id = select.startsWith('$') ? select : `$fake-${++this.n}`;
          conn = { id, select, args, received: [], socket };
          this.connections.push(conn);
          socket.write(encode('ready', id));
          socket.write(encode('size', 0, 64, 48) + encode('rect', 0, 0, 0, 64, 48) + encode('cfill', 14, 0, 10, 20, 30, 255) + encode('sync', Date.now()));
        } else if (conn) {
          conn.received.push(ins);
        }
      }
    });
  }

  /** Connections that reached `connect` (i.e. streamed). */
  get streamed(): number {
    return this.connections.length;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
