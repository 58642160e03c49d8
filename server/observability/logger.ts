import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

// Anything that could carry a secret is removed before a line is written.
const REDACT = [
  'password', '*.password', 'secret', '*.secret', 'token', '*.token', 'apiKey', '*.apiKey',
  'passwordHash', '*.passwordHash', 'console.password', '*.console.password',
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { service: 'vdi-broker' }, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination,
  );
}
