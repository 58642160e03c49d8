// Request schemas shared by several routers.
import { z } from 'zod';
import { identifier, poolName, username, displayText, ROLES, DESKTOP_STATES, SESSION_STATES } from '../broker/index.ts';

export const poolParams = z.strictObject({ name: poolName });
export const myPoolParams = z.strictObject({ pool: poolName });
export const idParams = z.strictObject({ id: z.uuid('expected a desktop or session id') });
export const userParams = z.strictObject({ id: username });
export const groupParams = z.strictObject({ name: identifier() });
export const keyParams = z.strictObject({ id: z.string().regex(/^[A-Za-z0-9_-]{12}$/, 'expected an API key id') });

export const password = z.string().min(1).max(1024);
export const role = z.enum(ROLES);
export const desktopState = z.enum(DESKTOP_STATES);
export const sessionState = z.enum(SESSION_STATES);
export { identifier, poolName, username, displayText };
