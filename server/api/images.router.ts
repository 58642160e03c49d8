import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { identifier, displayText } from './schemas.ts';

const imageParams = z.strictObject({ name: identifier(64) });

export function imageRoutes(t: RouteTable, { broker }: ApiDeps): void {
  t.add({ method: 'get', path: '/images', tag: 'images', summary: 'Golden images with their versions', role: 'helpdesk', handler: async () => ({ images: await broker.images.list() }) });
  t.add({
    method: 'get', path: '/images/:name', tag: 'images', summary: 'One image', role: 'helpdesk', params: imageParams, errors: ['not_found'],
    handler: async ({ params }) => ({ image: await broker.images.get(params.name) }),
  });
  t.add({
    method: 'post', path: '/images', tag: 'images', summary: 'Register an image', role: 'admin', status: 201, errors: ['already_exists'],
    body: z.strictObject({ name: identifier(64), displayName: displayText(80).optional() }),
    handler: async ({ body, actor }) => ({ image: await broker.images.create(actor, body.name, body.displayName ?? '') }),
  });
  t.add({
    method: 'post', path: '/images/:name/versions', tag: 'images', summary: 'Add a version (a directory with disk.qcow2 on the broker and hypervisor hosts); publish rolls it out', role: 'admin', status: 201,
    params: imageParams, errors: ['not_found'],
    body: z.strictObject({ path: z.string().min(1).max(1024).regex(/^\/[^\0]*$/, 'an absolute path'), publish: z.boolean().default(false) }),
    handler: async ({ params, body, actor }) => ({ image: await broker.images.addVersion(actor, params.name, body) }),
  });
  t.add({
    method: 'post', path: '/images/:name/publish', tag: 'images', summary: 'Publish a version: idle desktops are rebuilt at once, busy ones after logoff', role: 'admin',
    params: imageParams, errors: ['not_found'], body: z.strictObject({ version: z.number().int().min(1) }),
    handler: async ({ params, body, actor }) => ({ image: await broker.images.publish(actor, params.name, body.version) }),
  });
}
