/**
 * The cache in a registry repository (`--cache-repo`), shared by every runner. Like Kaniko, one tag
 * per step key: `<repo>:<key>` names a small OCI manifest whose single layer (if any) is the step's
 * layer and whose annotation holds the CacheEntry, so a lookup is one manifest GET. Layers fetched
 * on a hit land in the build's blob dir (digest-verified by the client).
 */
import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import type { RegistryClient } from '../registry/client.ts';
import type { Reference } from '../registry/reference.ts';
import { MediaType, type Manifest } from '../image/types.ts';
import { canonicalJson, digestHex, sha256Digest } from '../image/digest.ts';
import { isKilnError } from '../util/errors.ts';
import type { CacheEntry, CacheHit, KeyParts, LayerCache } from './types.ts';

const ENTRY_ANNOTATION = 'dev.kiln.cache.entry';
const EMPTY_CONFIG = Buffer.from('{}');

export class RegistryCacheStore implements LayerCache {
  constructor(
    private readonly client: RegistryClient,
    private readonly repo: Reference,
    private readonly blobDir: string,
    private readonly push: boolean,
  ) {}

  private ref(key: string): Reference {
    return { registry: this.repo.registry, repository: this.repo.repository, tag: key };
  }

  async get(key: string): Promise<CacheHit | null> {
    let bytes: Buffer;
    try {
      bytes = (await this.client.getManifest(this.ref(key), [MediaType.OciManifest])).bytes;
    } catch (e) {
      if (isKilnError(e) && (e.code === 'MANIFEST_UNKNOWN' || e.category === 'registry')) return null;
      throw e;
    }
    const manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
    const raw = manifest.annotations?.[ENTRY_ANNOTATION];
    if (!raw) return null;
    const entry = JSON.parse(raw) as CacheEntry;
    if (entry.key !== key || entry.version !== 1) return null;
    if (!entry.layer) return { entry, from: 'repo' };
    await mkdir(this.blobDir, { recursive: true });
    const path = join(this.blobDir, digestHex(entry.layer.digest));
    const have = await stat(path).catch(() => null);
    if (!have || have.size !== entry.layer.size) {
      await this.client.fetchBlob(
        this.ref(key),
        { mediaType: entry.layer.mediaType, digest: entry.layer.digest, size: entry.layer.size },
        path,
      );
    }
    return { entry, blobPath: path, from: 'repo' };
  }

  async put(entry: CacheEntry, blobPath?: string): Promise<void> {
    if (!this.push) return;
    const ref = this.ref(entry.key);
    const configDesc = {
      mediaType: MediaType.OciEmpty,
      digest: sha256Digest(EMPTY_CONFIG),
      size: EMPTY_CONFIG.length,
    };
    await this.client.pushBlob(ref, configDesc, () => Readable.from([EMPTY_CONFIG]));
    const layers = [];
    if (entry.layer && blobPath) {
      const desc = { mediaType: entry.layer.mediaType, digest: entry.layer.digest, size: entry.layer.size };
      await this.client.pushBlob(ref, desc, () => createReadStream(blobPath));
      layers.push(desc);
    }
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: configDesc,
      layers,
      annotations: { [ENTRY_ANNOTATION]: JSON.stringify(entry) },
    };
    await this.client.putManifest(ref, Buffer.from(canonicalJson(manifest)), MediaType.OciManifest);
  }

  async previousParts(): Promise<KeyParts | null> {
    return null;
  }

  async rememberParts(): Promise<void> {}
}

/** Directory first, then the repository; a repository hit is copied into the directory. */
export class TieredCache implements LayerCache {
  constructor(private readonly stores: LayerCache[]) {}

  async get(key: string): Promise<CacheHit | null> {
    for (let i = 0; i < this.stores.length; i++) {
      const hit = await this.stores[i]!.get(key);
      if (hit) {
        for (let j = 0; j < i; j++) await this.stores[j]!.put(hit.entry, hit.blobPath);
        return hit;
      }
    }
    return null;
  }

  async put(entry: CacheEntry, blobPath?: string): Promise<void> {
    for (const s of this.stores) await s.put(entry, blobPath);
  }

  async previousParts(slot: string): Promise<KeyParts | null> {
    for (const s of this.stores) {
      const p = await s.previousParts(slot);
      if (p) return p;
    }
    return null;
  }

  async rememberParts(slot: string, parts: KeyParts): Promise<void> {
    for (const s of this.stores) await s.rememberParts(slot, parts);
  }
}
