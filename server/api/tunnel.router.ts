// Tickets for the Guacamole tunnel (/api/v1/tunnel). A ticket is single use, short lived,
// opaque and bound to the login that asked for it (see server/tunnel/tickets.ts); the client
// hands it over as the WebSocket's first message, never in the URL (docs/streaming.md).
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { idParams } from './schemas.ts';

// The OpenAPI summary says how to use the ticket: the route table has no longer description.
const HANDOVER =
  'Redeem it on the WebSocket `tunnel` with the same login (session cookie or API key) from an allowed Origin, ' +
  'sent as the first message `0.,6.ticket,43.<ticket>;`, never in the URL (docs/streaming.md)';

export function tunnelRoutes(t: RouteTable, { tickets, auth, shadow }: ApiDeps): void {
  t.add({
    method: 'post',
    path: '/me/sessions/:id/connect',
    tag: 'me',
    summary: `A single-use ticket, bound to my login, that opens my session through the Guacamole tunnel. ${HANDOVER}`,
    role: 'user',
    params: idParams,
    errors: ['not_found', 'conflict', 'provider_error', 'not_supported'],
    handler: async ({ req, params, actor, res }) => {
      res.set('Cache-Control', 'no-store');
      return tickets.issueConnect(actor, auth.loginOf(req), params.id);
    },
  });
  t.add({
    method: 'post',
    path: '/sessions/:id/shadow',
    tag: 'sessions',
    summary: `A single-use ticket, bound to my login, to watch a user's live session (audited): the user is told, or must allow it first (pool shadow: consent); read-only unless the user handed over control. ${HANDOVER}`,
    role: 'helpdesk',
    params: idParams,
    errors: ['not_found', 'conflict', 'shadow_consent_pending', 'shadow_denied', 'shadow_consent_timeout'],
    handler: async ({ req, params, actor, res }) => {
      res.set('Cache-Control', 'no-store');
      // The user is told (or asked first, pool shadow: consent); input only once they hand over control.
      const { control } = await shadow.admit(actor, params.id);
      return tickets.issueShadow(actor, auth.loginOf(req), params.id, { control });
    },
  });
}
