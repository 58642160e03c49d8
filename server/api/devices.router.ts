import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { DEVICE_MODES, displayText, identifier, poolName } from '../broker/index.ts';
import { setDeviceCookie } from '../devices/index.ts';
import { BrokerError } from '../errors.ts';

const location = identifier(63);
const deviceName = displayText(80).min(1);
const mode = z.enum(DEVICE_MODES);
const idleSeconds = z.number().int().min(0).max(86_400);
const deviceParams = z.strictObject({ id: z.uuid('expected a device id') });

const deviceView = z.object({
  id: z.string(), name: z.string(), location: z.string(), mode, state: z.enum(['active', 'revoked']), displayPool: z.string().nullable(),
  idleSeconds: z.number(), createdAt: z.number(), lastSeenAt: z.number(), lastSeenAddress: z.string(), user: z.string().nullable(),
  revokedAt: z.number().nullable(), revokedBy: z.string().nullable(), enrolledWith: z.string(),
});
const codeView = z.object({
  id: z.string(), location: z.string(), mode, name: z.string().nullable(), displayPool: z.string().nullable(), idleSeconds: z.number(),
  uses: z.number(), usesLeft: z.number(), expiresAt: z.number(), createdAt: z.number(), createdBy: z.string(),
});

/**
 * Enrolled thin clients (docs/devices.md). Roles: admins make enrolment codes (they decide what
 * joins the fleet); the helpdesk lists, renames, moves and revokes devices; enrolment and a
 * device's own view need no login (the device has none yet).
 */
export function deviceRoutes(t: RouteTable, { devices, auth, identity }: ApiDeps): void {
  t.add({
    method: 'post', path: '/devices/enrolment-codes', tag: 'devices', role: 'admin', status: 201,
    summary: 'Make an enrolment code (shown once; stored hashed): a kiosk browser opening /enroll with it becomes a device at the location, in the mode',
    body: z.strictObject({
      location, mode, name: deviceName.optional(), displayPool: poolName.optional(), idleSeconds: idleSeconds.optional(),
      uses: z.number().int().min(1).max(1000).default(1),
      expiresInSeconds: z.number().int().min(60).max(30 * 86400).default(86400),
    }),
    response: z.object({ code: z.string(), enrolment: codeView }),
    handler: async ({ body, actor }) => devices.createCode(actor, body),
  });
  t.add({
    method: 'get', path: '/devices/enrolment-codes', tag: 'devices', role: 'admin', summary: 'Enrolment codes not expired or used up (without the codes themselves)',
    response: z.object({ enrolments: z.array(codeView) }),
    handler: async () => ({ enrolments: await devices.listCodes() }),
  });
  t.add({
    method: 'delete', path: '/devices/enrolment-codes/:id', tag: 'devices', role: 'admin', summary: 'Withdraw an enrolment code', params: deviceParams, errors: ['not_found'],
    auditAction: 'device.enrolmentcode.delete',
    handler: async ({ params, actor }) => devices.deleteCode(actor, params.id),
  });
  t.add({
    method: 'post', path: '/devices/enroll', tag: 'devices', role: 'anyone', status: 201,
    summary: 'Enrol this browser as a device with an enrolment code: answers the device and sets its credential cookie (HttpOnly, SameSite=Strict)',
    body: z.strictObject({ code: z.string().min(1).max(64).regex(/^[0-9A-Za-z -]+$/, 'letters, digits, spaces and dashes only'), name: deviceName.optional() }),
    errors: ['enrolment_code_invalid'],
    response: z.object({ device: deviceView }),
    handler: async ({ req, res, body, actor }) => {
      const { device, credential } = await devices.enrol(actor, body.code, body.name);
      setDeviceCookie(req, res, devices.config.cookieName, credential);
      return { device: (await devices.get(device.id)) };
    },
  });
  t.add({
    method: 'get', path: '/devices/me', tag: 'devices', role: 'anyone',
    summary: "This browser's device (null when it is not enrolled): what the kiosk client does (mode, idle logoff, the location's default pool)",
    errors: ['device_revoked', 'device_unknown'],
    response: z.object({
      device: z.object({ id: z.string(), name: z.string(), location: z.string(), mode, idleSeconds: z.number(), displayPool: z.string().nullable(), defaultPool: z.string().nullable() }).nullable(),
      requireEnrolledKiosk: z.boolean(),
    }),
    handler: async ({ req }) => {
      const requireEnrolledKiosk = devices.config.requireEnrolledKiosk;
      if (!req.device) return { device: null, requireEnrolledKiosk };
      const d = await devices.get(req.device.id);
      return { device: { id: d.id, name: d.name, location: d.location, mode: d.mode, idleSeconds: d.idleSeconds, displayPool: d.displayPool, defaultPool: devices.defaultPoolOf(d.location) }, requireEnrolledKiosk };
    },
  });
  t.add({
    method: 'post', path: '/devices/me/display', tag: 'devices', role: 'anyone',
    summary: "A room display starts itself: logs in as its device principal (user device.<id>, group room-displays) and answers the pool to launch, with the session's CSRF token",
    errors: ['device_required', 'device_revoked', 'device_unknown', 'conflict'],
    response: z.object({ pool: z.string(), user: z.unknown(), csrfToken: z.string() }),
    handler: async ({ req, res, actor }) => {
      if (!req.device) throw new BrokerError('device_required', 'Only an enrolled room display can start itself.');
      const { principal, pool } = await devices.displayPrincipal(actor, req.device);
      await auth.preLoginSession(req, res);
      await auth.completeLogin(req, principal, { method: 'device' });
      return { pool, user: await identity.getUser(principal.id), csrfToken: auth.csrfToken(req) };
    },
  });
  t.add({
    method: 'get', path: '/devices', tag: 'devices', role: 'helpdesk', summary: 'Enrolled devices, filtered by location and state',
    query: z.strictObject({ location: location.optional(), state: z.enum(['active', 'revoked']).optional() }),
    response: z.object({ devices: z.array(deviceView) }),
    handler: async ({ query }) => ({ devices: await devices.list(query) }),
  });
  t.add({
    method: 'get', path: '/devices/:id', tag: 'devices', role: 'helpdesk', summary: 'One device', params: deviceParams, errors: ['not_found'],
    response: z.object({ device: deviceView }),
    handler: async ({ params }) => ({ device: await devices.get(params.id) }),
  });
  t.add({
    method: 'patch', path: '/devices/:id', tag: 'devices', role: 'helpdesk', summary: 'Rename a device, move it to another location, or change its mode',
    params: deviceParams,
    body: z.strictObject({ name: deviceName.optional(), location: location.optional(), mode: mode.optional(), displayPool: poolName.optional(), idleSeconds: idleSeconds.optional() })
      .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'Nothing to change.' }),
    errors: ['not_found'],
    response: z.object({ device: deviceView }),
    handler: async ({ params, body, actor }) => ({ device: await devices.update(actor, params.id, body) }),
  });
  t.add({
    method: 'post', path: '/devices/:id/revoke', tag: 'devices', role: 'helpdesk',
    summary: "Revoke a device: its next request answers device_revoked and its kiosk shows the enrolment page", params: deviceParams, errors: ['not_found', 'conflict'],
    response: z.object({ device: deviceView }),
    handler: async ({ params, actor }) => ({ device: await devices.revoke(actor, params.id) }),
  });
}
