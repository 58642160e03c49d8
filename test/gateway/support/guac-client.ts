// A Guacamole-protocol test client over TCP, behaving like guacamole-lite + guacamole-common-js:
// handshake, collect instructions, reassemble img streams into images, answer `sync`.
import net from 'node:net';
import type { GuacdEndpoint } from '../../../server/gateway/index.ts';
import { encode, InstructionParser, type Instruction } from '../../../server/gateway/protocol.ts';

export type Image = { stream: string; layer: string; mime: string; x: number; y: number; data: Buffer };
export type Frame = { instructions: Instruction[]; images: Image[]; ts: string };

export class GuacTestClient {
  readonly socket: net.Socket;
  readonly received: Instruction[] = [];
  private readonly parser = new InstructionParser(1 << 22);
  private cursor = 0;
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      for (const ins of this.parser.push(d)) this.received.push(ins);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Connects to a gateway's endpoint (TCP or unix socket), or to a TCP port on 127.0.0.1. */
  static connect(to: GuacdEndpoint | number): Promise<GuacTestClient> {
    const opts = typeof to === 'number' ? { host: '127.0.0.1', port: to } : to;
    return new Promise((resolve, reject) => {
      const s = net.connect(opts, () => resolve(new GuacTestClient(s)));
      s.once('error', reject);
    });
  }

  send(opcode: string, ...args: Array<string | number>): void {
    this.socket.write(encode(opcode, ...args));
  }

  /** Next instruction (in order) matching `pred`, skipping others; rejects after timeoutMs. */
  async next(pred: (i: Instruction) => boolean = () => true, timeoutMs = 10_000): Promise<Instruction> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.received.length) {
        const ins = this.received[this.cursor++]!;
        if (pred(ins)) return ins;
      }
      if (this.closed) throw new Error('connection closed while waiting');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for an instruction');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Reads instructions up to the next `sync` and reassembles images; optionally acks. */
  async frame(ack = true, timeoutMs = 10_000): Promise<Frame> {
    const instructions: Instruction[] = [];
    const open = new Map<string, Image & { chunks: string[] }>();
    const images: Image[] = [];
    for (;;) {
      const ins = await this.next(undefined, timeoutMs);
      instructions.push(ins);
      const [a0 = '', a1 = '', a2 = '', a3 = '', a4 = '', a5 = ''] = ins.args;
      if (ins.opcode === 'img') {
        open.set(a0, { stream: a0, layer: a2, mime: a3, x: Number(a4), y: Number(a5), data: Buffer.alloc(0), chunks: [] });
      } else if (ins.opcode === 'blob' && open.has(a0)) {
        open.get(a0)!.chunks.push(a1);
      } else if (ins.opcode === 'end' && open.has(a0)) {
        const img = open.get(a0)!;
        open.delete(a0);
        images.push({ ...img, data: Buffer.concat(img.chunks.map((c) => Buffer.from(c, 'base64'))) });
      } else if (ins.opcode === 'sync') {
        if (ack) this.send('sync', a0);
        return { instructions, images, ts: a0 };
      } else if (ins.opcode === 'error') {
        throw new Error(`gateway error ${a1}: ${a0}`);
      }
    }
  }

  /** select (a grant, or anything else) / args / size / audio / video / image / timezone / connect → ready id. */
  async handshake(params: Record<string, string>, select: string): Promise<{ id: string; args: string[] }> {
    this.send('select', select);
    const args = await this.next((i) => i.opcode === 'args' || i.opcode === 'error');
    if (args.opcode === 'error') throw new Error(`gateway error ${args.args[1]}: ${args.args[0]}`);
    this.send('size', 1024, 768, 96);
    this.send('audio', 'audio/L16');
    this.send('video');
    this.send('image', 'image/png', 'image/jpeg', 'image/webp');
    this.send('timezone', 'Europe/Paris');
    const values = args.args.map((name) => (name.startsWith('VERSION_') ? name : (params[name] ?? '')));
    this.send('connect', ...values);
    const ready = await this.next((i) => i.opcode === 'ready' || i.opcode === 'error');
    if (ready.opcode === 'error') throw new Error(`gateway error ${ready.args[1]}: ${ready.args[0]}`);
    return { id: ready.args[0]!, args: args.args };
  }

  close(): void {
    this.socket.destroy();
  }
}
