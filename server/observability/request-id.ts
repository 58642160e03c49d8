// The id that ties a request's log lines together (and to the proxy's and the browser's):
// the X-Request-Id the caller sent when it is a plain token, else a new UUID.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const VALID = /^[A-Za-z0-9._-]{8,64}$/;

export function requestIdOf(headers: IncomingHttpHeaders): string {
  const sent = headers['x-request-id'];
  return typeof sent === 'string' && VALID.test(sent) ? sent : randomUUID();
}
