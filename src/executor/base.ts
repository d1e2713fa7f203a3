/**
 * Getting a stage's base onto disk: its layers downloaded (several at once) into the shared blob
 * store and extracted in order into the stage's rootfs.
 */
import { mkdir } from 'node:fs/promises';
import type { ExecutorDeps } from './deps.ts';
import type { Digest, ImageConfig, LayerBlob, Platform } from '../image/types.ts';

/** A base image as the executor sees it; the registry module provides it. */
export interface ResolvedBase {
  /** The reference as resolved, pinned to its digest (`docker.io/library/debian@sha256:…`). */
  pinned: string;
  digest: Digest;
  config: ImageConfig;
  layers: LayerBlob[];
}

export interface BaseImageSource {
  resolve(ref: string, platform: Platform): Promise<ResolvedBase>;
  /** Makes sure the blob is in the local store; returns its path. */
  fetchLayer(layer: LayerBlob): Promise<string>;
}

// As containers/image (skopeo, buildah) does by default.
const PARALLEL_DOWNLOADS = 6;

export async function materializeBase(
  base: ResolvedBase,
  source: BaseImageSource,
  rootfs: string,
  deps: ExecutorDeps,
  skipDevices: boolean,
): Promise<LayerBlob[]> {
  await mkdir(rootfs, { recursive: true });
  const downloads: Array<Promise<string>> = [];
  // Downloads run ahead of extraction, at most PARALLEL_DOWNLOADS in flight.
  const prefetch = (upTo: number): void => {
    for (let j = downloads.length; j < Math.min(upTo, base.layers.length); j++) {
      const p = source.fetchLayer(base.layers[j]!);
      p.catch(() => undefined); // awaited in order below; this only keeps an early failure from being "unhandled"
      downloads.push(p);
    }
  };
  const out: LayerBlob[] = [];
  for (let i = 0; i < base.layers.length; i++) {
    prefetch(i + PARALLEL_DOWNLOADS);
    const path = await downloads[i]!;
    await deps.extractLayer(path, rootfs, { skipDevices });
    out.push({ ...base.layers[i]!, path });
  }
  return out;
}
