// How the API and the CLI give the checks what they read.
import type { Config } from '../config/index.ts';
import type { Store } from '../store/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { ConsoleEndpoint } from '../providers/provider.ts';
import { QemuProvider } from '../providers/qemu/index.ts';
import type { DoctorContext, GuestClocks } from './types.ts';

export interface DoctorParts {
  config: Config;
  store: Store;
  providers: ProviderRegistry;
  guests?: GuestClocks;
  /**
   * broker: the running broker's own drivers (their console() is what the tunnel uses);
   * cli: drivers made by the command line, whose QEMU console() would set a new VNC password
   * under the running broker — so QEMU consoles are read from the desktop's state file instead.
   */
  mode: 'broker' | 'cli';
  timeoutMs?: number;
  now?: () => number;
}

export function doctorContext(p: DoctorParts): DoctorContext {
  const consoleOf = async (d: { id: string; provider: string }): Promise<ConsoleEndpoint | undefined> => {
    const machine = await p.store.machines.get(d.id);
    if (machine) return { protocol: machine.protocol, host: machine.address, port: machine.port, ...(machine.hasPassword ? {} : { password: '' }) };
    if (!p.providers.has(d.provider)) return undefined;
    const provider = p.providers.get(d.provider);
    if (p.mode === 'cli' && provider instanceof QemuProvider) {
      const st = await provider.describe(d.id);
      if (!st) throw new Error('no desktop directory on any host of its provider');
      if (!st.vncPort) throw new Error('no console port recorded (not started)');
      const host = p.config.providers.flatMap((x) => (x.kind === 'qemu' && x.name === d.provider ? x.hosts : [])).find((h) => h.name === st.host);
      // QEMU desktops always start with password=on (a fresh one per broker instance).
      return { protocol: 'vnc', host: host?.consoleAddress ?? '127.0.0.1', port: st.vncPort };
    }
    return provider.console(d.id);
  };
  return {
    config: p.config, store: p.store, providers: p.providers, ...(p.guests ? { guests: p.guests } : {}),
    consoleOf, timeoutMs: p.timeoutMs ?? 2000, now: p.now ?? Date.now,
  };
}
