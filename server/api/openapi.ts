import { z } from 'zod';
import { ERROR_CODES } from '../errors.ts';
import type { RouteTable } from './route.ts';

const COMMON_ERRORS = ['validation_failed', 'unauthenticated', 'forbidden', 'csrf_invalid', 'redis_unavailable', 'internal_error'] as const;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): Record<string, unknown> {
  const s = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
}

/** The OpenAPI 3.1 document, generated from the route table. */
export function buildOpenApi(table: RouteTable, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of table.routes) {
    const path = r.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const params: unknown[] = [];
    if (r.params) {
      const s = jsonSchema(r.params) as { properties?: Record<string, unknown> };
      for (const [name, schema] of Object.entries(s.properties ?? {})) params.push({ name, in: 'path', required: true, schema });
    }
    if (r.query) {
      const s = jsonSchema(r.query) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(s.properties ?? {})) params.push({ name, in: 'query', required: s.required?.includes(name) ?? false, schema });
    }
    const codes = [...new Set([...COMMON_ERRORS, ...(r.errors ?? [])])];
    const byStatus = new Map<number, string[]>();
    for (const c of codes) {
      const st = ERROR_CODES[c].status;
      byStatus.set(st, [...(byStatus.get(st) ?? []), c]);
    }
    const responses: Record<string, unknown> = {
      [String(r.status ?? 200)]: r.status === 204 ? { description: 'Done' } : { description: 'Success', content: { 'application/json': { schema: r.response ? jsonSchema(r.response, 'output') : {} } } },
    };
    for (const [st, cs] of byStatus) {
      responses[String(st)] = { description: cs.join(', '), content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    (paths[path] ??= {})[r.method] = {
      summary: r.summary,
      tags: [r.tag],
      'x-required-role': r.role,
      security: r.role === 'anyone' ? [] : [{ session: [] }, { apiKey: [] }],
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.body) } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'vdi-broker API',
      version,
      description:
        'VDI connection broker. Cookie sessions need the X-CSRF-Token header (from login or GET /me) on state changes; API keys are sent as Bearer tokens.',
    },
    servers: [{ url: '/api/v1' }],
    paths,
    components: {
      securitySchemes: {
        session: { type: 'apiKey', in: 'cookie', name: 'vdi.sid' },
        apiKey: { type: 'http', scheme: 'bearer' },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: { type: 'string', enum: Object.keys(ERROR_CODES) },
                message: { type: 'string' },
                field: { type: 'string' },
              },
            },
          },
        },
      },
    },
  };
}
