/**
 * What the executor needs from the filesystem and isolation layers, as one typed bundle. builder.ts wires
 * the real implementations; nothing in the executor imports them directly, which keeps the data flow
 * one-way and lets each piece be tested on its own.
 */
import type { Readable } from 'node:stream';
import type { Diff, LayerWriteOptions, Snapshotter, StepSnapshot, WrittenLayer } from '../fs/types.ts';
import type { Sandbox } from '../isolation/types.ts';
import type { TreeStore } from '../cache/tree-store.ts';

export interface ExtractOptions {
  /** Told the blob bytes read so far (the extraction's progress). */
  onRead?: (bytes: number) => void;
  /** The blob's bytes from here instead of its path (a download still running: base.ts). */
  stream?: Readable;
}

/** How stage trees may share files, which depends on the snapshot engine and the rung. */
export interface TreeSharing {
  /**
   * Stages may start as hard-link clones of one shared extraction of their base image. Only safe
   * when nothing writes into a stage rootfs in place: with the overlay engine every change lands as
   * a new inode moved in from the upper dir, so the shared files are never modified.
   */
  linkBaseTrees: boolean;
  /** Trees kept between builds (only with linkBaseTrees: the same no-write-in-place rule). */
  trees?: TreeStore;
}

/**
 * The isolation probe may still be running when the executor starts (builder.ts): planning, base
 * resolution and cache lookups go on meanwhile. Everything that depends on what it chooses (the
 * sandbox, the snapshot engine, how layers are extracted, tree sharing) waits for it by itself or
 * comes after ready().
 */
export interface ExecutorDeps {
  /** Resolves once isolation is chosen (rejects with the probe's error). */
  ready(): Promise<void>;
  /** Only after ready(). */
  sharing(): TreeSharing;
  /** The snapshotter's begin() waits for the probe; its engine is known after ready(). */
  createSnapshotter(rootfs: string, scratchDir: string): Snapshotter;
  /**
   * A snapshot of a whole tree across many steps (--single-snapshot): indexes `rootfs` now, and
   * `finish` compares it with the tree as it is then. The steps in between change `rootfs` itself.
   */
  beginTreeSnapshot(rootfs: string, exclude: string[]): Promise<StepSnapshot>;
  sandbox: Sandbox;
  writeLayer(diff: Diff, opts: LayerWriteOptions): Promise<WrittenLayer>;
  /**
   * Inflates a gzip layer blob into the new file `out` (a plain tar extractLayer takes as well);
   * false, leaving no `out`, when the blob is not gzip or cannot be inflated so.
   */
  inflateLayer(blobPath: string, out: string): Promise<boolean>;
  /**
   * Applies one compressed or plain layer blob on top of `rootfs` (whiteouts honoured; device nodes
   * as the rung allows).
   */
  extractLayer(blobPath: string, rootfs: string, opts: ExtractOptions): Promise<void>;
}
