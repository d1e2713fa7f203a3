/**
 * Getting a stage's base onto disk: its layers downloaded (several at once) into the shared blob
 * store and extracted in order into the stage's rootfs.
 */
import { mkdir } from 'node:fs/promises';
import type { ExecutorDeps } from './deps.ts';
import type { Digest, ImageConfig, LayerBlob, Platform } from '../image/types.ts';
import type { Logger } from '../log/logger.ts';
import { formatBytes } from '../log/transfer-board.ts';
import type { TransferProgress } from '../log/transfer.ts';

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

/** Who hears about a base extraction: the build's log, and the progress display. */
export interface BaseReport {
  logger: Logger;
  transfers?: TransferProgress;
}

export async function materializeBase(
  base: ResolvedBase,
  source: BaseImageSource,
  rootfs: string,
  deps: ExecutorDeps,
  report?: BaseReport,
): Promise<LayerBlob[]> {
  await mkdir(rootfs, { recursive: true });
  const name = base.pinned.replace(/@sha256:[0-9a-f]+$/, '').replace(/^docker\.io\/(library\/)?/, '');
  const bytes = base.layers.reduce((n, l) => n + l.descriptor.size, 0);
  const t0 = Date.now();
  // Never silent: the first step that needs the tree waits for this.
  report?.logger.info(
    `extracting base ${name} (${base.layers.length} layer${base.layers.length === 1 ? '' : 's'}, ${formatBytes(bytes)})`,
  );
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
    const { digest, size } = base.layers[i]!.descriptor;
    const meter = report?.transfers?.begin({ phase: 'extract', subject: name, blob: digest, total: size });
    await deps
      .extractLayer(path, rootfs, meter ? { onRead: (n) => meter.update(n) } : {})
      .finally(() => meter?.end(true));
    out.push({ ...base.layers[i]!, path });
  }
  const ms = Date.now() - t0;
  report?.logger.log(
    'info',
    `extracted base ${name} in ${ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`}`,
    {
      event: 'base-extracted',
      base: base.pinned,
      layers: base.layers.length,
      bytes,
      durationMs: ms,
    },
  );
  return out;
}
