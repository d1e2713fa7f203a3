/**
 * Base images kept in the cache dir (Kaniko's warmer): `kiln warm` pulls each image's manifest,
 * config and layers for a platform into `<cache-dir>/base/`:
 *   base/blobs/<hex>              layers and configs, named by digest (verified on download)
 *   base/manifests/<id>.json      one per reference and platform: the pinned digest, manifest, config
 * A build with --cache-dir takes base layers from here instead of downloading them, and when the
 * registry cannot be reached it resolves a warmed reference from its cached manifest.
 */
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, stat, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryClient, ResolvedImage } from '../registry/client.ts';
import { formatReference, parseReference, withDefaultTag } from '../registry/reference.ts';
import type { Descriptor, ImageConfig, Manifest, Platform } from '../image/types.ts';
import { digestHex, sha256Digest } from '../image/digest.ts';
import { formatPlatform } from '../image/platform.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';

interface ManifestRecord {
  version: 1;
  reference: string;
  platform: string;
  digest: string;
  mediaType: string;
  manifest: string;
  config: string;
}

async function atomicWrite(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

export class BaseImageCache {
  readonly root: string;

  constructor(cacheDir: string) {
    this.root = join(cacheDir, 'base');
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', digestHex(digest));
  }

  private recordPath(reference: string, platform: Platform): string {
    const id = createHash('sha256')
      .update(`${reference}\0${formatPlatform(platform)}`)
      .digest('hex')
      .slice(0, 32);
    return join(this.root, 'manifests', `${id}.json`);
  }

  /** The blob's path when it is cached with the expected size, else undefined. */
  async hasBlob(desc: Descriptor): Promise<string | undefined> {
    const p = this.blobPath(desc.digest);
    const st = await stat(p).catch(() => null);
    return st && st.size === desc.size ? p : undefined;
  }

  /** Hard-links (or copies) a cached blob to `dest`; false when it is not cached. */
  async linkBlob(desc: Descriptor, dest: string): Promise<boolean> {
    const src = await this.hasBlob(desc);
    if (!src) return false;
    const tmp = `${dest}.tmp-${randomBytes(6).toString('hex')}`;
    await link(src, tmp).catch(() => copyFile(src, tmp));
    await rename(tmp, dest);
    return true;
  }

  /** The warmed image for a reference and platform, or undefined. */
  async lookup(text: string, platform: Platform): Promise<ResolvedImage | undefined> {
    const reference = formatReference(withDefaultTag(parseReference(text)));
    let rec: ManifestRecord;
    try {
      rec = JSON.parse(await readFile(this.recordPath(reference, platform), 'utf8')) as ManifestRecord;
    } catch {
      return undefined;
    }
    if (rec.version !== 1 || rec.reference !== reference) return undefined;
    const manifestBytes = Buffer.from(rec.manifest, 'utf8');
    const configBytes = Buffer.from(rec.config, 'utf8');
    const manifest = JSON.parse(rec.manifest) as Manifest;
    if (sha256Digest(configBytes) !== manifest.config.digest) return undefined;
    return {
      manifest,
      manifestBytes,
      digest: rec.digest,
      config: JSON.parse(rec.config) as ImageConfig,
      configBytes,
      mediaType: rec.mediaType,
    };
  }

  /** Pulls one image (manifest, config, layers) for `platform` into the cache; returns its digest. */
  async warm(
    client: RegistryClient,
    text: string,
    platform: Platform,
    opts: { force?: boolean; logger?: Logger } = {},
  ): Promise<string> {
    const ref = withDefaultTag(parseReference(text));
    const reference = formatReference(ref);
    const img = await client.resolveImage(ref, platform);
    await mkdir(join(this.root, 'blobs'), { recursive: true });
    await mkdir(join(this.root, 'manifests'), { recursive: true });
    const cached = await this.lookup(reference, platform);
    if (cached && cached.digest === img.digest && !opts.force) {
      let complete = true;
      for (const l of img.manifest.layers) if (!(await this.hasBlob(l))) complete = false;
      if (complete) {
        opts.logger?.info(`warm: ${reference} is cached (${img.digest})`);
        return img.digest;
      }
    }
    await atomicWrite(this.blobPath(img.manifest.config.digest), img.configBytes);
    for (const l of img.manifest.layers) {
      if (!opts.force && (await this.hasBlob(l))) continue;
      opts.logger?.info(`warm: ${reference}: layer ${l.digest} (${l.size} bytes)`);
      await client.fetchBlob(ref, l, this.blobPath(l.digest));
    }
    const rec: ManifestRecord = {
      version: 1,
      reference,
      platform: formatPlatform(platform),
      digest: img.digest,
      mediaType: img.mediaType,
      manifest: img.manifestBytes.toString('utf8'),
      config: img.configBytes.toString('utf8'),
    };
    await atomicWrite(this.recordPath(reference, platform), JSON.stringify(rec));
    opts.logger?.info(`warm: ${reference} -> ${img.digest}`);
    return img.digest;
  }
}

/** `kiln warm`: every image into `<cacheDir>/base/`; the pinned digests, in order. */
export async function warmImages(
  client: RegistryClient,
  images: string[],
  cacheDir: string,
  platform: Platform,
  opts: { force?: boolean; logger?: Logger } = {},
): Promise<string[]> {
  if (images.length === 0) {
    throw new KilnError('usage', 'NO_IMAGES', 'kiln warm needs at least one --image', {
      hint: 'pass e.g. --image debian:bookworm',
    });
  }
  const cache = new BaseImageCache(cacheDir);
  const out: string[] = [];
  for (const image of images) out.push(await cache.warm(client, image, platform, opts));
  return out;
}
