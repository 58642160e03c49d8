// Reads the device credential cookie of every API request (after the login middleware, so the
// logged-in user is known): sets req.device for an enrolled, active device, sends a rotated
// credential, answers device_revoked / device_unknown otherwise (enrolment itself excepted, so a
// revoked kiosk can be enrolled again), and refuses kiosk logins without a device when
// devices.requireEnrolledKiosk is on.
import type { Request, Response, RequestHandler, CookieOptions } from 'express';
import { BrokerError } from '../errors.ts';
import type { DeviceContext } from '../broker/index.ts';
import type { DeviceService } from './device.service.ts';

declare module 'express-serve-static-core' {
  interface Request {
    /** The enrolled device the request came from (its credential cookie checked). */
    device?: DeviceContext;
  }
}

/** The kiosk client marks a browser running in kiosk mode with this (non-secret) cookie. */
export const KIOSK_COOKIE = 'vdi.kiosk';
/** Browsers keep cookies at most 400 days; the credential rotates long before. */
const COOKIE_MAX_AGE_MS = 400 * 86400_000;
// Only the API reads it.
const COOKIE_PATH = '/api/v1';

export function deviceCookieOptions(req: Request): CookieOptions {
  return { httpOnly: true, sameSite: 'strict', secure: req.secure, path: COOKIE_PATH, maxAge: COOKIE_MAX_AGE_MS };
}

function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

const actorOf = (req: Request) => ({ principal: req.principal ?? null, address: req.ip ?? req.socket.remoteAddress ?? '' });

export function setDeviceCookie(req: Request, res: Response, name: string, credential: string): void {
  res.cookie(name, credential, deviceCookieOptions(req));
}

export function deviceMiddleware(devices: DeviceService): RequestHandler {
  const name = devices.config.cookieName;
  return (req, res, next) => {
    const enrolling = req.method === 'POST' && req.path === '/devices/enroll';
    const kioskLogin = req.method === 'POST' && req.path === '/auth/login' && cookieValue(req.headers.cookie, KIOSK_COOKIE) === '1';
    const raw = cookieValue(req.headers.cookie, name);
    if (!raw) {
      if (kioskLogin && devices.config.requireEnrolledKiosk) return next(new BrokerError('device_required'));
      return next();
    }
    devices.check(raw).then(async (r) => {
      const actor = actorOf(req);
      if (r.kind === 'unknown') {
        res.clearCookie(name, { path: COOKIE_PATH });
        await devices.refused(actor, 'device_unknown');
        return enrolling ? next() : next(new BrokerError('device_unknown'));
      }
      if (r.kind === 'revoked') {
        if (enrolling) return next();
        await devices.refused(actor, 'device_revoked', r.device);
        return next(new BrokerError('device_revoked'));
      }
      req.device = r.context;
      if (r.rotated) setDeviceCookie(req, res, name, r.rotated);
      await devices.seen(r.device, actor.address, req.principal?.kind === 'user' ? req.principal.id : '');
      next();
    }, next);
  };
}
