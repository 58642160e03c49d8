// Wake-on-LAN: a UDP "magic packet" (6 × 0xFF, then the MAC 16 times) to the configured
// broadcast address, port 9. Sent before waiting for a machine's console; harmless when awake.
import dgram from 'node:dgram';

export function magicPacket(mac: string): Buffer {
  const hex = mac.replace(/[:-]/g, '');
  if (!/^[0-9a-f]{12}$/i.test(hex)) throw new Error('bad MAC');
  const m = Buffer.from(hex, 'hex');
  return Buffer.concat([Buffer.alloc(6, 0xff), ...Array.from({ length: 16 }, () => m)]);
}

export async function wake(mac: string, address: string, port = 9): Promise<void> {
  const s = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => s.bind(0, () => resolve()).once('error', reject));
    if (!address.startsWith('127.') && address !== '::1') s.setBroadcast(true);
    await new Promise<void>((resolve, reject) => s.send(magicPacket(mac), port, address, (err) => (err ? reject(err) : resolve())));
  } finally {
    s.close();
  }
}
