export { createLogger, type Logger } from './logger.ts';
export { Metrics } from './metrics.ts';
export { requestIdOf } from './request-id.ts';
