import { BrokerError } from '../errors.ts';
import type { Provider } from './provider.ts';

/** The providers this broker drives, by instance name. */
export class ProviderRegistry {
  private readonly byName = new Map<string, Provider>();

  constructor(providers: Provider[] = []) {
    for (const p of providers) this.add(p);
  }

  add(p: Provider): void {
    if (this.byName.has(p.name)) throw new Error(`provider ${p.name} registered twice`);
    this.byName.set(p.name, p);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): Provider {
    const p = this.byName.get(name);
    if (!p) throw new BrokerError('provider_error', `Provider ${name} is not configured on this broker.`);
    return p;
  }

  list(): Provider[] {
    return [...this.byName.values()];
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.list().map((p) => p.close()));
  }
}
