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

// Users and groups as the API (users.router.ts) and the CLI (cli.ts) take them: one rule for both.
export const newUserBody = z.strictObject({ id: username, displayName: displayText(80).optional(), role: role.default('user'), password, groups: z.array(identifier()).max(100).optional() });
export const userPatchBody = z.strictObject({ displayName: displayText(80).optional(), role: role.optional(), password: password.optional(), disabled: z.boolean().optional(), groups: z.array(identifier()).max(100).optional() });
export const newGroupBody = z.strictObject({ name: identifier(), displayName: displayText(80).optional(), members: z.array(username).max(10_000).optional() });
export const groupPatchBody = z.strictObject({ displayName: displayText(80).optional(), members: z.array(username).max(10_000).optional() });
export const newApiKeyBody = z.strictObject({ name: identifier(64), role });
export const desktopState = z.enum(DESKTOP_STATES);
export const sessionState = z.enum(SESSION_STATES);
export { identifier, poolName, username, displayText };
