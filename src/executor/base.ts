/**
 * Getting a stage's base onto disk: its layers downloaded (several at once) into the shared blob
 * store and extracted in order into the stage's rootfs.
 */
import { mkdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { removeTree } from '../fs/remove-tree.ts';
import type { ExecutorDeps, ExtractOptions } from './deps.ts';
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
  /**
   * Starts fetching a layer and gives its bytes as they arrive too (ending only once verified);
   * undefined when it is already being fetched. Sources without it are read from their files.
   */
  streamLayer?(layer: LayerBlob): StreamedLayer | undefined;
}

/** A layer being fetched: its bytes as they arrive, and its file once verified and in place. */
export interface StreamedLayer {
  stream: Readable;
  path: Promise<string>;
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
  // The first layer (usually the big one) extracts while it downloads; the rest download meanwhile.
  const first = base.layers.length > 0 ? source.streamLayer?.(base.layers[0]!) : undefined;
  if (first) downloads.push(first.path);
  const out: LayerBlob[] = [];
  for (let i = 0; i < base.layers.length; i++) {
    prefetch(i + PARALLEL_DOWNLOADS);
    const { digest, size } = base.layers[i]!.descriptor;
    const meter = report?.transfers?.begin({ phase: 'extract', subject: name, blob: digest, total: size });
    const onRead = meter ? { onRead: (n: number) => meter.update(n) } : {};
    const path =
      i === 0 && first
        ? await extractStreamed(first, rootfs, deps, onRead, report?.logger).finally(() => meter?.end(true))
        : await downloads[i]!.then((p) =>
            deps
              .extractLayer(p, rootfs, onRead)
              .then(() => p)
              .finally(() => meter?.end(true)),
          );
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

/**
 * Extracts a layer from its bytes as they download. The tree counts only once the download has
 * verified them too; when the stream broke (the download was retried from its first byte) the
 * partly made tree goes and the layer is extracted again from its verified file. A download that
 * failed fails the build with its own error, not the extraction's.
 */
async function extractStreamed(
  layer: StreamedLayer,
  rootfs: string,
  deps: ExecutorDeps,
  opts: ExtractOptions,
  logger: Logger | undefined,
): Promise<string> {
  try {
    const [path] = await Promise.all([
      layer.path,
      deps.extractLayer('', rootfs, { ...opts, stream: layer.stream }),
    ]);
    return path;
  } catch (e) {
    layer.stream.destroy();
    const path = await layer.path; // a failed download throws its own error here
    logger?.debug(`extraction while downloading failed (${(e as Error).message}): extracting ${path} again`);
    await removeTree(rootfs);
    await mkdir(rootfs, { recursive: true });
    await deps.extractLayer(path, rootfs, opts);
    return path;
  }
}
