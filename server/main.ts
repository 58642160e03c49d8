// vdi-broker: `node --import tsx server/main.ts [--config FILE] [--check-config]`
import { configOrExit, runBroker, createLogger } from './runtime.ts';

const argv = process.argv.slice(2);
const config = configOrExit(argv);
if (argv.includes('--check-config')) {
  process.stdout.write('config ok\n');
  process.exit(0);
}
const logger = createLogger(config.logging.level);
await runBroker(config, logger, 'configured');
