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

// The logon timeline of a session (docs/architecture.md "Logon timeline"): phase → ms, absent until known.
const phaseMs = z.number().int().min(0);
export const logonTimeline = z.object({
  authentication: phaseMs.optional().describe('the login that the request came from'),
  assignment: phaseMs.optional().describe('request until a desktop was chosen'),
  desktop_ready: phaseMs.optional().describe('boot wait: 0 on a ready spare'),
  home_mapped: phaseMs.optional().describe("the guest agent mapping the user's folder"),
  tunnel_connected: phaseMs.optional().describe('request answered (or desktop ready) until the tunnel was open'),
  first_frame: phaseMs.optional().describe('Launch click until the browser drew the first frame'),
  guest_logon: phaseMs.optional().describe("request until the guest agent said the user's session is up"),
  click_to_usable: phaseMs.optional().describe('Launch click until usable: first frame and, with the guest agent, its logon'),
});
/** A session as helpdesk routes show it. */
export const sessionView = z.object({
  id: z.string(), user: z.string(), desktop: z.string(), pool: z.string(), state: sessionState, clientAddress: z.string(),
  createdAt: z.number(), connectedAt: z.number(), disconnectedAt: z.number(), lastActivityAt: z.number(), endedAt: z.number(), endReason: z.string(),
  bytesIn: z.number(), bytesOut: z.number(), connectedMs: z.number(), tunnels: z.number(),
  logon: logonTimeline, guestIdleSeconds: z.number(), guestIdleAt: z.number(),
  device: z.object({ id: z.string(), name: z.string() }).optional(),
});
/** The browser's first frame of a tunnel: ms after the Launch click (bounded: 10 minutes). */
export const firstFrameBody = z.strictObject({ ms: z.number().int('expected whole milliseconds').min(0).max(600_000) });
/** Text shown on a screen: printable characters and (in the text) line breaks; no control or format characters (terminal escapes, bidi overrides). */
// The same characters as display names (no markup, quotes or shell/terminal metacharacters: the
// text also reaches the guest's console), plus line breaks in the body.
const screenText = (min: number, max: number, lines: boolean) =>
  z.string().trim().min(min).max(max).regex(lines ? /^[\p{L}\p{M}\p{N} _.,:()&'/#+@!?%\n-]*$/u : /^[\p{L}\p{M}\p{N} _.,:()&'/#+@!?%-]*$/u, lines ? 'letters, digits, spaces, line breaks and . , : ( ) & \' / # + @ ! ? % - only' : 'letters, digits, spaces and . , : ( ) & \' / # + @ ! ? % - only');
export const sessionMessageBody = z.strictObject({ title: screenText(1, 80, false), text: screenText(1, 1000, true) });
export const messagesQuery = z.strictObject({ after: z.coerce.number().int().min(0).max(1e9).optional(), limit: z.coerce.number().int().min(1).max(1000).optional() });
