// Routes are declared once, with their role, input schemas and summary; the same declarations
// mount the express handlers, build the OpenAPI document and drive the role-matrix test.
import { Router, type Request, type Response, type NextFunction } from 'express';
import { z, type ZodType } from 'zod';
import { BrokerError } from '../errors.ts';
import { ERROR_CODES } from '../errors.ts';
import { requireRole, actorOf } from '../auth/index.ts';
import type { Actor, Role } from '../broker/index.ts';

export type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';

export interface HandlerContext<B, Q, P> {
  req: Request;
  res: Response;
  body: B;
  query: Q;
  params: P;
  actor: Actor;
  /** Answer with this status instead of the route's default. */
  setStatus: (code: number) => void;
}

export interface RouteDef<B = unknown, Q = unknown, P = unknown> {
  method: Method;
  /** express path relative to /api/v1, e.g. /pools/:name */
  path: string;
  summary: string;
  tag: string;
  /** Least role allowed; 'anyone' = no login needed. */
  role: Role | 'anyone';
  body?: ZodType<B>;
  query?: ZodType<Q>;
  params?: ZodType<P>;
  /** Success status (default 200). */
  status?: number;
  /** Error codes this route may answer with, beyond the common ones (for the docs). */
  errors?: (keyof typeof ERROR_CODES)[];
  handler: (ctx: HandlerContext<B, Q, P>) => Promise<unknown>;
}

export function zodIssueToError(err: z.ZodError, where: 'body' | 'query' | 'params'): BrokerError {
  const issue = err.issues[0]!;
  let path = issue.path.map(String);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    path = [...path, issue.keys[0]!];
    message = `Unknown field "${issue.keys[0]}".`;
  } else if (issue.code === 'invalid_type' && issue.input === undefined) {
    message = 'Required.';
  }
  const field = path.length ? path.join('.') : where;
  return new BrokerError('validation_failed', `${field}: ${message}`, { field });
}

function parse<T>(schema: ZodType<T> | undefined, value: unknown, where: 'body' | 'query' | 'params'): T {
  if (!schema) {
    if (where === 'body' && value !== undefined && !(typeof value === 'object' && value !== null && Object.keys(value).length === 0)) {
      throw new BrokerError('validation_failed', 'This route takes no request body.', { field: 'body' });
    }
    return undefined as T;
  }
  const r = schema.safeParse(value === undefined && where !== 'body' ? {} : value);
  if (!r.success) throw zodIssueToError(r.error, where);
  return r.data;
}

export class RouteTable {
  readonly routes: RouteDef<any, any, any>[] = [];

  add<B, Q, P>(def: RouteDef<B, Q, P>): void {
    this.routes.push(def as RouteDef<any, any, any>);
  }

  mount(router: Router): void {
    for (const def of this.routes) {
      router[def.method](def.path, requireRole(def.role), async (req: Request, res: Response, next: NextFunction) => {
        try {
          let status = def.status ?? 200;
          const ctx = {
            setStatus: (code: number) => void (status = code),
            req,
            res,
            body: parse(def.body, req.body, 'body'),
            query: parse(def.query, req.query, 'query'),
            params: parse(def.params, req.params, 'params'),
            actor: actorOf(req),
          };
          const out = await def.handler(ctx);
          if (res.headersSent) return;
          if (out === undefined) res.status(def.status ?? 204).end();
          else res.status(status).json(out);
        } catch (err) {
          next(err);
        }
      });
    }
  }
}

export const router = () => Router({ strict: false, caseSensitive: true });
