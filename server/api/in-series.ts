import type { RequestHandler } from 'express';

/**
 * Middlewares run one after the other as ONE express layer (each layer costs a router pass per
 * request); an error or a middleware that answers ends the series like it ends express's chain.
 */
export function inSeries(...steps: RequestHandler[]): RequestHandler {
  return (req, res, next) => {
    let i = 0;
    const step = (err?: unknown): void => {
      if (err && err !== 'route') return next(err);
      const mw = steps[i++];
      if (!mw) return next();
      try {
        const r = mw(req, res, step) as unknown;
        if (r instanceof Promise) r.catch(step);
      } catch (e) {
        step(e || new Error('middleware threw'));
      }
    };
    step();
  };
}
