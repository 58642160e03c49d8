// Tickets for the Guacamole tunnel (/api/v1/tunnel): the browser opens the WebSocket with
// `?token=<ticket>`. A ticket is single use, short lived and opaque (see server/tunnel/tickets.ts).
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { idParams } from './schemas.ts';

export function tunnelRoutes(t: RouteTable, { tickets }: ApiDeps): void {
  t.add({
    method: 'post',
    path: '/me/sessions/:id/connect',
    tag: 'me',
    summary: 'A single-use ticket that opens my session in the browser through the Guacamole tunnel',
    role: 'user',
    params: idParams,
    errors: ['not_found', 'conflict', 'provider_error', 'not_supported'],
    handler: async ({ params, actor, res }) => {
      res.set('Cache-Control', 'no-store');
      return tickets.issueConnect(actor, params.id);
    },
  });
  t.add({
    method: 'post',
    path: '/sessions/:id/shadow',
    tag: 'sessions',
    summary: "A single-use, read-only ticket to watch a user's live session (audited)",
    role: 'helpdesk',
    params: idParams,
    errors: ['not_found', 'conflict'],
    handler: async ({ params, actor, res }) => {
      res.set('Cache-Control', 'no-store');
      return tickets.issueShadow(actor, params.id);
    },
  });
}
