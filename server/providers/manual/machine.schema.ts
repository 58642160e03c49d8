// A machine of a manual pool as the API, the CLI and CSV import take it: one rule for all three.
import { z } from 'zod';
import { poolName } from '../../broker/model.ts';

/** A desktop name (unique broker-wide): a host name label. */
export const machineName = z.string().min(1).max(63).regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/, 'a host name: lower-case letters, digits and -');
/** A host name, IPv4 or IPv6 address. */
const address = z.string().min(1).max(253).regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+)$/, 'a host name or an IP address');
const mac = z.string().regex(/^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i, 'a MAC like 00:1a:2b:3c:4d:5e').transform((s) => s.toLowerCase());
/** A password: anything printable (it is sealed, never shown), no control characters. */
const secret = z.string().max(256).regex(/^[^\u0000-\u001f\u007f]*$/, 'no control characters');
/** A console login name (user, user@realm) and a Windows domain: no markup or quoting. */
const login = z.string().max(256).regex(/^[A-Za-z0-9._@-]*$/, 'letters, digits and . _ @ - only');
const domain = z.string().max(253).regex(/^[A-Za-z0-9._-]*$/, 'letters, digits and . _ - only');

export const RDP_SECURITY = ['any', 'nla', 'nla-ext', 'tls', 'vmconnect', 'rdp'] as const;
export const DEFAULT_PORT = { vnc: 5900, rdp: 3389 } as const;

export const machineSpecSchema = z.strictObject({
  name: machineName,
  pool: poolName,
  protocol: z.enum(['vnc', 'rdp']),
  address,
  /** Default: 5900 for VNC, 3389 for RDP. */
  port: z.number().int().min(1).max(65535).optional(),
  username: login.default(''),
  password: secret.default(''),
  domain: domain.default(''),
  security: z.enum(RDP_SECURITY).default('any'),
  ignoreCert: z.boolean().default(false),
  /** Wake-on-LAN MAC. */
  mac: mac.optional(),
  agent: z.boolean().default(false),
});

export type MachineSpec = z.infer<typeof machineSpecSchema>;

/** What an edit may change: everything but the name and the pool. A password of '' clears it. */
export const machineUpdateSchema = z.strictObject({
  protocol: z.enum(['vnc', 'rdp']).optional(),
  address: address.optional(),
  port: z.number().int().min(1).max(65535).optional(),
  username: login.optional(),
  password: secret.optional(),
  domain: domain.optional(),
  security: z.enum(RDP_SECURITY).optional(),
  ignoreCert: z.boolean().optional(),
  mac: z.union([mac, z.literal('')]).optional(),
  agent: z.boolean().optional(),
});

export type MachineUpdate = z.infer<typeof machineUpdateSchema>;
