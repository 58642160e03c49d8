// The real broker process (server/runtime.ts), with the test double as its only provider,
// for tests that kill and restart the process. Configured by VDI_* variables like the real one;
// VDI_TEST_PROVIDER_STATE keeps the double's VMs in a file across restarts,
// VDI_TEST_PROVIDER_DELAY_MS slows its operations so a test can catch one half-done,
// VDI_TEST_CONSOLE (JSON ConsoleEndpoint) points every desktop's console somewhere (tunnel tests).
import { configOrExit, runBroker, createLogger } from '../../server/runtime.ts';
import { FakeProvider } from './fake-provider.ts';

const config = configOrExit(process.argv.slice(2));
const provider = new FakeProvider('fake', ['host-a'], process.env.VDI_TEST_PROVIDER_STATE);
provider.delayMs = Number(process.env.VDI_TEST_PROVIDER_DELAY_MS ?? 0);
if (process.env.VDI_TEST_CONSOLE) provider.consoleEndpoint = JSON.parse(process.env.VDI_TEST_CONSOLE);
const running = await runBroker(config, createLogger(config.logging.level), [provider]);
process.stdout.write(`LISTENING ${running.url}\n`);
