// VNC Authentication (RFB security type 2): the 16-byte challenge is encrypted with DES in
// ECB mode under the password (first 8 bytes, zero padded) whose key bytes are bit-reversed.
// Node 20's OpenSSL 3 has no single `des-ecb` without the legacy provider, but it does have
// `des-ede3-ecb`; triple DES with K1 = K2 = K3 is exactly single DES.
import { createCipheriv } from 'node:crypto';

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}

/** Plain single-DES ECB encryption (no padding) of a multiple of 8 bytes. */
export function desEncrypt(key8: Buffer, data: Buffer): Buffer {
  if (key8.length !== 8 || data.length % 8 !== 0) throw new Error('DES: bad key or block size');
  const cipher = createCipheriv('des-ede3-ecb', Buffer.concat([key8, key8, key8]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/**
 * The VNC key: the password's first 8 bytes, zero padded, each byte bit-reversed. The bytes
 * are UTF-8, like guacd (libvncclient takes the C string it is given) and like TigerVNC's
 * vncpasswd and QEMU's set_password, so "pässwörd" is p c3 a4 s s w c3 b6.
 */
export function vncKey(password: string): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, 'utf8').copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) key[i] = reverseBits(key[i]!);
  return key;
}

/** Response to a VNC Authentication challenge. */
export function vncAuthResponse(password: string, challenge: Buffer): Buffer {
  if (challenge.length !== 16) throw new Error('VNC auth challenge must be 16 bytes');
  return desEncrypt(vncKey(password), challenge);
}
