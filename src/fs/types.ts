/**
 * Contracts of the filesystem layer: snapshots of a rootfs around one build step, and the layers
 * they become. Implementations live beside this file; the executor only sees these types.
 */
import type { Digest } from '../image/types.ts';

/** What a step changed, relative to the rootfs before it. Paths are absolute inside the image ("/etc/passwd"). */
export interface Diff {
  /** Root of the tree that holds the added and modified entries (overlay upper dir, or the rootfs itself). */
  root: string;
  /** Added or modified paths (files, dirs, links, devices), sorted. Parent dirs of changed entries are included. */
  changed: string[];
  /** Deleted paths: each becomes a `.wh.<name>` entry. */
  deleted: string[];
  /** Directories whose lower contents were all replaced: each gets `.wh..wh..opq`. */
  opaque: string[];
}

/** A layer written to disk, compressed, with both digests computed in the same pass. */
export interface WrittenLayer {
  /** Compressed blob file. */
  path: string;
  digest: Digest;
  diffId: Digest;
  size: number;
  mediaType: string;
  /** Number of tar entries: 0 means the step changed nothing and may be an empty layer. */
  entries: number;
}

export interface LayerWriteOptions {
  compression: 'gzip' | 'zstd' | 'none';
  compressionLevel: number;
  /** Clamp every mtime to this (unix seconds), for --reproducible / --timestamp / SOURCE_DATE_EPOCH. */
  clampMtime?: number;
  /** Directory to place the blob in (named by its digest once known). */
  outDir: string;
}

export type SnapshotEngine = 'overlay' | 'walk';

/**
 * One step's snapshot. `begin` prepares the tree the step must run in (`runRoot`); `finish` tells
 * what the step changed, and folds the change into the rootfs so the next step sees it.
 */
export interface StepSnapshot {
  /** The directory the RUN chroots into (overlay merged dir, or the rootfs for the walk engine). */
  readonly runRoot: string;
  finish(): Promise<Diff>;
  /** Undo mounts and scratch dirs without producing a diff (failed step). */
  abort(): Promise<void>;
}

export interface Snapshotter {
  readonly engine: SnapshotEngine;
  /**
   * `exclude`: image paths that must never be in a diff even if they changed: mount targets,
   * secrets, cache mounts, /proc, /sys, /dev, --ignore-path, and the stub files made as bind
   * targets for /etc/hosts and /etc/resolv.conf.
   */
  begin(opts: { exclude: string[] }): Promise<StepSnapshot>;
}
