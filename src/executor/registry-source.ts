/**
 * Base images from registries, for the executor: the manifest for the target platform, and layer
 * blobs fetched (verified) into the build's blob store, each once per build.
 */
import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import type { RegistryClient } from '../registry/client.ts';
import { parseReference, withDefaultTag, type Reference } from '../registry/reference.ts';
import type { LayerBlob, Platform } from '../image/types.ts';
import { digestHex } from '../image/digest.ts';
import { KilnError } from '../util/errors.ts';
import type { BaseImageSource, ResolvedBase, StreamedLayer } from './base.ts';
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
    const path = this.pathOf(layer);
    let p = this.inflight.get(path);
    if (!p) {
      p = this.fetch(layer, path);
      this.inflight.set(path, p);
    }
    return p;
  }

  /**
   * Starts fetching a layer nobody has asked for yet and gives its bytes as they arrive too, so
   * that the base extracts while it downloads instead of after (blob-tee.ts); the stream ends only
   * once the blob is verified. A blob already here streams from its file. Undefined when the layer
   * is already being fetched: then only its file is to be had.
   */
  streamLayer(layer: LayerBlob): StreamedLayer | undefined {
    const path = this.pathOf(layer);
    if (this.inflight.has(path)) return undefined;
    // A few chunks at most: the download waits for the extraction, never the other way round.
    const stream = new PassThrough({ highWaterMark: 1 << 20 });
    const p = this.fetch(layer, path, stream);
    this.inflight.set(path, p);
    p.catch(() => undefined); // the owner awaits `path`; this only keeps an early failure from being "unhandled"
    return { stream, path: p };
  }

  private pathOf(layer: LayerBlob): string {
    return join(this.blobDir, digestHex(layer.descriptor.digest));
  }

  private async fetch(layer: LayerBlob, path: string, reader?: PassThrough): Promise<string> {
    const local = async (): Promise<string> => {
      if (reader) await pipeline(createReadStream(path), reader).catch(() => undefined);
      return path;
    };
    const have = await stat(path).catch(() => null);
    if (have && have.size === layer.descriptor.size) return local();
    await mkdir(this.blobDir, { recursive: true });
    if (await this.baseCache?.linkBlob(layer.descriptor, path)) return local();
    if (!layer.source) {
      const e = new KilnError(
        'internal',
        'NO_LAYER_SOURCE',
        `layer ${layer.descriptor.digest} has no source`,
      );
      reader?.destroy(e);
      throw e;
    }
    const ref: Reference = { registry: layer.source.registry, repository: layer.source.repository };
    await this.client.fetchBlob(ref, layer.descriptor, path, reader);
    return path;
  }
}
