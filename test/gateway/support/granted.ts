// A gateway for tests with its grant key, and grants issued the way the broker's tunnel does.
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { issueGrant, startGateway, type Gateway, type GatewayOptions, type GrantTarget } from '../../../server/gateway/index.ts';

export type GrantedGateway = {
  gw: Gateway;
  key: Buffer;
  /** A grant for one connection through this gateway. */
  grant(target: GrantTarget, o?: { readOnly?: boolean; now?: number; ttlMs?: number }): string;
  /** A grant to the VNC server on 127.0.0.1:port. */
  vnc(port: number, readOnly?: boolean): string;
};

export async function grantedGateway(opts: Partial<GatewayOptions> = {}): Promise<GrantedGateway> {
  const key = opts.grantKey ?? randomBytes(32);
  const gw = await startGateway({ listen: { host: '127.0.0.1', port: 0 }, grantKey: key, logger: pino({ level: 'silent' }), ...opts });
  const grant: GrantedGateway['grant'] = (target, o = {}) => issueGrant(key, { gateway: gw.address, readOnly: o.readOnly ?? false, ...target }, o.now, o.ttlMs);
  return { gw, key, grant, vnc: (port, readOnly = false) => grant({ host: '127.0.0.1', port }, { readOnly }) };
}
