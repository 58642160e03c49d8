// Connections to a directory's servers: per-request clients (no shared bound state between
// users), at most `maxConnections` at once, every step under a timeout, and the next server
// tried when one does not answer. Only "could not talk to it" moves on to the next server;
// an LDAP answer (wrong password, no such object) is the directory's word and is returned.
import { isIP } from 'node:net';
import { Client, ResultCodeError, BusyError, UnavailableError } from 'ldapts';
import { BrokerError } from '../../../errors.ts';
import type { Logger } from '../../../observability/index.ts';

export interface LdapServersOptions {
  urls: string[];
  startTls: boolean;
  /** PEM of the CA(s) for ldaps:// and StartTLS; undefined = the system's. */
  ca?: string;
  timeoutMs: number;
  maxConnections: number;
  logger: Logger;
  /** For log lines and errors. */
  name: string;
}

/** A server that failed is tried after the others for this long. */
const DOWN_MEMORY_MS = 30_000;
/** One login's whole exchange with one server may take this many timeouts (connect, TLS, binds, searches). */
const EXCHANGE_TIMEOUTS = 4;

/** True when the error means the server could not be reached or did not answer in time. */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof BrokerError) return false;
  if (err instanceof BusyError || err instanceof UnavailableError) return true;
  if (err instanceof ResultCodeError) return false;
  return err instanceof Error;
}

export class LdapServers {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly downSince = new Map<string, number>();

  constructor(private readonly o: LdapServersOptions) {}

  /** Servers in order: those not seen failing recently first, each group in configured order. */
  private order(): string[] {
    const now = Date.now();
    const up = this.o.urls.filter((u) => !(now - (this.downSince.get(u) ?? -Infinity) < DOWN_MEMORY_MS));
    return [...up, ...this.o.urls.filter((u) => !up.includes(u))];
  }

  private tlsOptions(url: string): { ca?: string[]; servername?: string; minVersion: 'TLSv1.2' } {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return { ...(this.o.ca ? { ca: [this.o.ca] } : {}), ...(isIP(host) ? {} : { servername: host }), minVersion: 'TLSv1.2' };
  }

  private async acquire(): Promise<void> {
    if (this.active < this.o.maxConnections) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const go = () => {
        clearTimeout(timer);
        this.active++;
        resolve();
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new BrokerError('directory_unavailable', 'The directory is busy; try again shortly.'));
      }, this.o.timeoutMs);
      this.waiting.push(go);
    });
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }

  /**
   * Runs `fn` with a connected (and, with startTls, upgraded) client, on the first server that
   * answers; `fn` may run again on the next server, so it must only read. Throws
   * `directory_unavailable` when no server answers.
   */
  async withClient<T>(fn: (client: Client, url: string) => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      let last: unknown;
      for (const url of this.order()) {
        // tlsOptions only for ldaps://: ldapts opens a TLS socket whenever they are given, and
        // StartTLS must begin in plain text.
        const client = new Client({ url, timeout: this.o.timeoutMs, connectTimeout: this.o.timeoutMs, ...(url.startsWith('ldaps://') ? { tlsOptions: this.tlsOptions(url) } : {}), strictDN: false });
        let timer: NodeJS.Timeout | undefined;
        try {
          // Each LDAP operation has its own timeout; this bounds the whole exchange with one
          // server (a TLS handshake that stalls, a server that answers slowly step after step).
          const deadline = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no complete answer within ${EXCHANGE_TIMEOUTS}×timeoutMs`)), this.o.timeoutMs * EXCHANGE_TIMEOUTS);
          });
          const exchange = (async () => {
            if (this.o.startTls && url.startsWith('ldap://')) {
              try {
                await client.startTLS(this.tlsOptions(url));
              } catch (err) {
                // A server that cannot do StartTLS is as good as down for us: never fall back to plain text.
                throw new Error(`StartTLS failed: ${(err as Error).message}`, { cause: err });
              }
            }
            return fn(client, url);
          })();
          exchange.catch(() => undefined);
          const out = await Promise.race([exchange, deadline]);
          this.downSince.delete(url);
          return out;
        } catch (err) {
          if (err instanceof BrokerError) throw err;
          if (err instanceof ResultCodeError && !isUnreachable(err)) {
            // The directory answered with an error the login cannot use (a base DN that does not
            // exist, no right to search): a configuration problem, said in the log.
            this.o.logger.error({ authenticator: this.o.name, server: url, err: err.message }, 'the directory refused an operation of the login');
            throw new BrokerError('directory_unavailable', 'The directory refused to answer; the administrator has to check the authenticator\'s configuration.', { cause: err });
          }
          last = err;
          this.downSince.set(url, Date.now());
          this.o.logger.warn({ authenticator: this.o.name, server: url, err: (err as Error).message }, 'directory server did not answer; trying the next');
        } finally {
          clearTimeout(timer);
          // unbind closes the socket; a dead connection may reject, which changes nothing.
          void client.unbind().catch(() => undefined);
        }
      }
      throw new BrokerError('directory_unavailable', undefined, { cause: last });
    } finally {
      this.release();
    }
  }
}
