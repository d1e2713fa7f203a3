/**
 * What the executor needs from the filesystem and isolation layers, as one typed bundle. run.ts wires
 * the real implementations; nothing in the executor imports them directly, which keeps the data flow
 * one-way and lets each piece be tested on its own.
 */
import type { Diff, LayerWriteOptions, Snapshotter, WrittenLayer } from '../fs/types.ts';
import type { Sandbox } from '../isolation/types.ts';

export interface ExtractOptions {
  /** Device nodes cannot be made in a user namespace: skip them (with a note) instead of failing. */
  skipDevices: boolean;
}

export interface ExecutorDeps {
  createSnapshotter(rootfs: string, scratchDir: string): Snapshotter;
  sandbox: Sandbox;
  writeLayer(diff: Diff, opts: LayerWriteOptions): Promise<WrittenLayer>;
  /** Applies one compressed or plain layer blob on top of `rootfs` (whiteouts honoured). */
  extractLayer(blobPath: string, rootfs: string, opts: ExtractOptions): Promise<void>;
}
