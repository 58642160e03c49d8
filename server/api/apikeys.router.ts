import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { keyParams, newApiKeyBody } from './schemas.ts';

export function apiKeyRoutes(t: RouteTable, { identity }: ApiDeps): void {
  t.add({ method: 'get', path: '/api-keys', tag: 'api-keys', summary: 'API keys (never their secrets)', role: 'admin', handler: async () => ({ apiKeys: await identity.listApiKeys() }) });
  t.add({
    method: 'post', path: '/api-keys', tag: 'api-keys', summary: 'Create an API key; the token is shown only in this answer', role: 'admin', status: 201,
    body: newApiKeyBody,
    handler: async ({ body, actor }) => identity.createApiKey(actor, body),
  });
  t.add({
    method: 'delete', path: '/api-keys/:id', tag: 'api-keys', summary: 'Revoke an API key', role: 'admin', params: keyParams, status: 204, errors: ['not_found'],
    handler: async ({ params, actor }) => {
      await identity.revokeApiKey(actor, params.id);
      return undefined;
    },
  });
}
