import type { ErrorRequestHandler, RequestHandler } from 'express';
import { BrokerError, isRedisUnavailable } from '../errors.ts';
import type { Logger } from '../observability/index.ts';

/** Turns anything thrown into `{error: {code, message, field?}}` with the right status. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    let e: BrokerError;
    if (err instanceof BrokerError) e = err;
    else if (isRedisUnavailable(err)) e = new BrokerError('redis_unavailable', undefined, { retryAfterSeconds: 2 });
    else if (err?.type === 'entity.parse.failed') e = new BrokerError('invalid_json', undefined, { field: 'body' });
    else if (err?.type === 'entity.too.large') e = new BrokerError('payload_too_large', undefined, { field: 'body' });
    else if (err?.type === 'encoding.unsupported' || err?.type === 'charset.unsupported' || err?.type === 'request.aborted' || err?.status === 400 || err?.status === 415) {
      e = new BrokerError('validation_failed', 'The request body cannot be read.', { field: 'body' });
    } else if (err?.code === 'EBADCSRFTOKEN' || err?.message === 'invalid csrf token') e = new BrokerError('csrf_invalid');
    // The web client's files (serve-static, fallthrough off): a missing or refused file is not found, never a 500.
    else if (err?.status === 404 || err?.status === 403) e = new BrokerError('route_not_found', `No file ${req.path}.`);
    else {
      logger.error({ err, reqId: res.locals.reqId, path: req.path, method: req.method }, 'unhandled error');
      e = new BrokerError('internal_error');
    }
    if (e.status >= 500 && e.code !== 'internal_error') logger.warn({ code: e.code, reqId: res.locals.reqId, path: req.path }, e.message);
    if (res.headersSent) return;
    if (e.retryAfterSeconds !== undefined) res.set('Retry-After', String(e.retryAfterSeconds));
    res.status(e.status).json(e.toJSON());
  };
}

export const notFound: RequestHandler = (req, _res, next) => next(new BrokerError('route_not_found', `No API route ${req.method} ${req.path}.`));
