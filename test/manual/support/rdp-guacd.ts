// guacd's side of the handshake for RDP, recording what the broker's tunnel would have guacd
// connect with: `select rdp` is answered with the RDP parameter names guacd announces, the
// `connect` values are kept by name, then `ready`. Nothing is relayed (no real guacd here).
import net from 'node:net';
import { encode, InstructionParser } from '../../../server/gateway/protocol.ts';

/** A subset of guacd 1.5's RDP parameters, in guacd's order. */
export const RDP_ARGS = [
  'hostname', 'port', 'domain', 'username', 'password', 'width', 'height', 'dpi', 'security', 'ignore-cert',
  'disable-audio', 'enable-drive', 'drive-name', 'drive-path', 'create-drive-path', 'disable-download', 'disable-upload',
  'resize-method', 'enable-wallpaper',
];

export interface RecordedConnect {
  select: string;
  args: Record<string, string>;
}

export class RecordingGuacd {
  readonly connects: RecordedConnect[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(): Promise<RecordingGuacd> {
    let self: RecordingGuacd | undefined;
    const server = net.createServer((s) => self!.onSocket(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    self = new RecordingGuacd(server, (server.address() as net.AddressInfo).port);
    return self;
  }

  private onSocket(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const parser = new InstructionParser(1 << 20);
    let select = '';
    socket.on('data', (d: Buffer) => {
      for (const ins of parser.push(d)) {
        if (ins.opcode === 'select') {
          select = ins.args[0] ?? '';
          socket.write(encode('args', 'VERSION_1_5_0', ...RDP_ARGS));
        } else if (ins.opcode === 'connect') {
          const args: Record<string, string> = {};
          RDP_ARGS.forEach((name, i) => (args[name] = ins.args[i + 1] ?? ''));
          this.connects.push({ select, args });
          socket.write(encode('ready', '$rdp-1'));
          socket.write(encode('size', 0, 64, 48) + encode('sync', Date.now()));
        }
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
