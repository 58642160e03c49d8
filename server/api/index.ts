import express, { type Router } from 'express';
import type { RequestListener } from 'node:http';
import { RouteTable, router } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { authRoutes } from './auth.router.ts';
import { meRoutes } from './me.router.ts';
import { poolRoutes } from './pools.router.ts';
import { desktopRoutes } from './desktops.router.ts';
import { sessionRoutes } from './sessions.router.ts';
import { userRoutes } from './users.router.ts';
import { apiKeyRoutes } from './apikeys.router.ts';
import { auditRoutes } from './audit.router.ts';
import { imageRoutes } from './images.router.ts';
import { hostRoutes } from './hosts.router.ts';
import { tunnelRoutes } from './tunnel.router.ts';
import { eventRoutes } from './events.router.ts';
import { filesRoutes } from './files.router.ts';
import { machineRoutes } from './machines.router.ts';
import { mfaRoutes } from './mfa.router.ts';
import { oidcRoutes } from './oidc.router.ts';
import { deviceRoutes } from './devices.router.ts';
import { recordingRoutes } from './recordings.router.ts';
import { shadowRoutes } from './shadow.router.ts';
import { statsRoutes } from './stats.router.ts';
import { deviceMiddleware } from '../devices/index.ts';
import { buildOpenApi } from './openapi.ts';
import { notFound } from './errors.middleware.ts';
import { inSeries } from './in-series.ts';
import { leanFrontDoor, type FrontDoorOptions } from './lean-lane.ts';

export { errorHandler } from './errors.middleware.ts';
export { RouteTable, type RouteDef } from './route.ts';
export type { ApiDeps } from './deps.ts';

/** All /api/v1 routes, with the table they were declared in (tests walk it). */
export function createApi(deps: ApiDeps, bodyLimitBytes: number, extra?: (t: RouteTable) => void): { router: Router; table: RouteTable; frontDoor: (o: FrontDoorOptions) => RequestListener } {
  const table = new RouteTable();
  for (const add of [authRoutes, meRoutes, poolRoutes, desktopRoutes, sessionRoutes, userRoutes, apiKeyRoutes, auditRoutes, imageRoutes, hostRoutes, tunnelRoutes, filesRoutes, machineRoutes, eventRoutes]) add(table, deps);
  oidcRoutes(table, deps);
  mfaRoutes(table, deps);
  deviceRoutes(table, deps);
  recordingRoutes(table, deps);
  shadowRoutes(table, deps);
  statsRoutes(table, deps);
  extra?.(table);
  let openapi: Record<string, unknown> | undefined;
  table.add({ method: 'get', path: '/openapi.json', tag: 'meta', summary: 'This document', role: 'anyone', handler: async () => (openapi ??= buildOpenApi(table, deps.version)) });

  const r = router();
  // Body, login, device, CSRF: one layer (each express layer costs a router pass per request).
  r.use(inSeries(express.json({ limit: bodyLimitBytes, strict: true }), ...deps.auth.middleware(), deviceMiddleware(deps.devices), deps.auth.csrfProtection()));
  table.mount(r, deps.broker.audit);
  r.use(notFound);
  // Logged-in callers of routes that leave the HTTP session alone skip express altogether (lean-lane.ts).
  return { router: r, table, frontDoor: (o) => leanFrontDoor(table, deps.auth, deps.devices.config.cookieName, o) };
}
