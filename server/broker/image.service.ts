import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BrokerError } from '../errors.ts';
import type { Store, Image, ImageVersion } from '../store/index.ts';
import type { AuditService, Actor } from './audit.service.ts';

export type ImageView = Image & { versions: ImageVersion[] };

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The golden-image registry. A version is a directory holding `disk.qcow2` (plus `vmlinuz` and
 * `initrd.img` for direct-kernel images like the demo one, and an optional `manifest.json`).
 * Publishing a version makes the rollout reconciler rebuild the pools that use the image.
 * Desktops record the exact version they were built from as "name:version".
 */
export class ImageService {
  constructor(private readonly store: Store, private readonly audit: AuditService) {}

  async create(actor: Actor, name: string, displayName: string): Promise<ImageView> {
    if (!(await this.store.images.create(name, displayName || name))) throw new BrokerError('already_exists', `An image named "${name}" exists.`, { field: 'name' });
    await this.audit.record(actor, 'image.create', { type: 'image', id: name });
    return this.get(name);
  }

  async get(name: string): Promise<ImageView> {
    const i = await this.store.images.get(name);
    if (!i) throw new BrokerError('not_found', `No image named "${name}".`);
    return { ...i, versions: await this.store.images.versions(name) };
  }

  async list(): Promise<ImageView[]> {
    const out: ImageView[] = [];
    for (const i of await this.store.images.list()) out.push({ ...i, versions: await this.store.images.versions(i.name) });
    return out;
  }

  /** Registers the files at `path` as the next version; publishes it when asked. */
  async addVersion(actor: Actor, name: string, body: { path: string; publish: boolean }): Promise<ImageView> {
    await this.get(name);
    const dir = resolve(body.path);
    const disk = join(dir, 'disk.qcow2');
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new BrokerError('validation_failed', `${dir} is not a directory on the broker host.`, { field: 'path' });
    if (!existsSync(disk)) throw new BrokerError('validation_failed', `${dir} has no disk.qcow2.`, { field: 'path' });
    let checksum = '';
    const agent = imageAgentOf(dir);
    try {
      const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files?: { disk?: { sha256?: string } } };
      checksum = m.files?.disk?.sha256 ?? '';
    } catch {
      // no manifest: hash the disk ourselves
    }
    if (!/^[0-9a-f]{64}$/.test(checksum)) checksum = await sha256File(disk);
    const version = await this.store.images.addVersion(name, { path: dir, format: 'qcow2', checksum, createdAt: new Date().toISOString(), createdBy: actor.principal?.id ?? '', ...agent });
    await this.audit.record(actor, 'image.version.add', { type: 'image', id: name }, { version, path: dir, checksum });
    if (body.publish) return this.publish(actor, name, version);
    return this.get(name);
  }

  async publish(actor: Actor, name: string, version: number): Promise<ImageView> {
    if (!(await this.store.images.version(name, version))) throw new BrokerError('not_found', `Image ${name} has no version ${version}.`, { field: 'version' });
    await this.store.images.publish(name, version);
    await this.audit.record(actor, 'image.publish', { type: 'image', id: name }, { version });
    return this.get(name);
  }

  /** "name:version" of the published version; throws a validation error if there is none. */
  async currentRef(name: string): Promise<string> {
    const i = await this.store.images.get(name);
    if (!i) throw new BrokerError('validation_failed', `No image named "${name}".`, { field: 'image' });
    if (!i.current) throw new BrokerError('validation_failed', `Image "${name}" has no published version.`, { field: 'image' });
    return `${name}:${i.current}`;
  }

  /** The registered version behind "name:version". */
  async resolve(ref: string): Promise<ImageVersion> {
    const m = /^([a-z0-9][a-z0-9._-]*):(\d+)$/.exec(ref);
    const v = m ? await this.store.images.version(m[1]!, Number(m[2])) : null;
    if (!v) throw new Error(`Image ${ref} is not in the registry.`);
    return v;
  }
}

/**
 * The guest agent an image version's manifest.json names ("agent": vdi | qga | none, and
 * "bootGraceMs"); nothing when it names none (the configured default applies, docs/agent.md).
 */
export function imageAgentOf(dir: string): { agent?: 'vdi' | 'qga' | 'none'; bootGraceMs?: number } {
  try {
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { agent?: unknown; bootGraceMs?: unknown };
    const agent = m.agent === 'vdi' || m.agent === 'qga' || m.agent === 'none' ? m.agent : undefined;
    const grace = typeof m.bootGraceMs === 'number' && Number.isInteger(m.bootGraceMs) && m.bootGraceMs >= 0 && m.bootGraceMs <= 600_000 ? m.bootGraceMs : undefined;
    return { ...(agent ? { agent } : {}), ...(grace !== undefined ? { bootGraceMs: grace } : {}) };
  } catch {
    return {};
  }
}
