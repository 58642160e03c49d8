import type { Config } from '../config/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Provider } from './provider.ts';

/** The providers the configuration asks for. (Drivers register here as they arrive.) */
export async function createProviders(_config: Config, _logger: Logger): Promise<Provider[]> {
  return [];
}
