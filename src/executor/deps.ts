/**
 * What the executor needs from the filesystem and isolation layers, as one typed bundle. builder.ts wires
 * the real implementations; nothing in the executor imports them directly, which keeps the data flow
 * one-way and lets each piece be tested on its own.
 */
import type { Diff, LayerWriteOptions, Snapshotter, StepSnapshot, WrittenLayer } from '../fs/types.ts';
import type { Sandbox } from '../isolation/types.ts';

export interface ExtractOptions {
  /** Device nodes cannot be made in a user namespace: skip them (with a note) instead of failing. */
  skipDevices: boolean;
  /** Told the blob bytes read so far (the extraction's progress). */
  onRead?: (bytes: number) => void;
}

export interface ExecutorDeps {
  createSnapshotter(rootfs: string, scratchDir: string): Snapshotter;
  /**
   * A snapshot of a whole tree across many steps (--single-snapshot): indexes `rootfs` now, and
   * `finish` compares it with the tree as it is then. The steps in between change `rootfs` itself.
   */
  beginTreeSnapshot(rootfs: string, exclude: string[]): Promise<StepSnapshot>;
  sandbox: Sandbox;
  writeLayer(diff: Diff, opts: LayerWriteOptions): Promise<WrittenLayer>;
  /** Applies one compressed or plain layer blob on top of `rootfs` (whiteouts honoured). */
  extractLayer(blobPath: string, rootfs: string, opts: ExtractOptions): Promise<void>;
}
