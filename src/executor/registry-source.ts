/**
 * Base images from registries, for the executor: the manifest for the target platform, and layer
 * blobs fetched (verified) into the build's blob store, each once per build.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryClient } from '../registry/client.ts';
import { parseReference, withDefaultTag, type Reference } from '../registry/reference.ts';
import type { LayerBlob, Platform } from '../image/types.ts';
import { digestHex } from '../image/digest.ts';
import { KilnError } from '../util/errors.ts';
import type { BaseImageSource, ResolvedBase } from './base.ts';
import type { BaseImageCache } from '../cache/base-cache.ts';
import type { Logger } from '../log/logger.ts';

export class RegistryImageSource implements BaseImageSource {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly client: RegistryClient,
    private readonly blobDir: string,
    /** Images warmed by `kiln warm` into the cache dir: layers come from there, not the network. */
    private readonly baseCache?: BaseImageCache,
    private readonly logger?: Logger,
  ) {}

  async resolve(text: string, platform: Platform): Promise<ResolvedBase> {
    const ref = withDefaultTag(parseReference(text));
    let img;
    try {
      img = await this.client.resolveImage(ref, platform);
    } catch (e) {
      // Kaniko's behaviour: a warmed image still builds when its registry cannot be reached.
      const cached = await this.baseCache?.lookup(text, platform);
      if (!cached) throw e;
      this.logger?.warn(
        `${text}: ${e instanceof Error ? e.message : String(e)}; using the warmed manifest ${cached.digest}`,
      );
      img = cached;
    }
    const diffIds = img.config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== img.manifest.layers.length) {
      throw new KilnError(
        'registry',
        'BAD_IMAGE',
        `${text}: the config lists ${diffIds.length} layers but the manifest ${img.manifest.layers.length}`,
        {
          hint: 'the image is malformed; rebuild or re-push it',
        },
      );
    }
    const layers: LayerBlob[] = img.manifest.layers.map((d, i) => ({
      descriptor: d,
      diffId: diffIds[i]!,
      source: { registry: ref.registry, repository: ref.repository },
    }));
    return {
      pinned: `${ref.registry}/${ref.repository}@${img.digest}`,
      digest: img.digest,
      config: img.config,
      layers,
    };
  }

  fetchLayer(layer: LayerBlob): Promise<string> {
    const path = join(this.blobDir, digestHex(layer.descriptor.digest));
    let p = this.inflight.get(path);
    if (!p) {
      p = (async () => {
        const have = await stat(path).catch(() => null);
        if (have && have.size === layer.descriptor.size) return path;
        await mkdir(this.blobDir, { recursive: true });
        if (await this.baseCache?.linkBlob(layer.descriptor, path)) return path;
        if (!layer.source)
          throw new KilnError(
            'internal',
            'NO_LAYER_SOURCE',
            `layer ${layer.descriptor.digest} has no source`,
          );
        await mkdir(this.blobDir, { recursive: true });
        const ref: Reference = { registry: layer.source.registry, repository: layer.source.repository };
        await this.client.fetchBlob(ref, layer.descriptor, path);
        return path;
      })();
      this.inflight.set(path, p);
    }
    return p;
  }
}
