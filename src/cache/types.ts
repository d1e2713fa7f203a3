/**
 * The layer cache's contract. A step's key names everything that can change its result; an entry
 * is the layer (or the fact that there was none) the step produced under that key.
 */
import type { Digest } from '../image/types.ts';

/** Inputs of one step's key, kept apart so that a miss can say which one changed. */
export interface KeyParts {
  /** Key of the state before the step (base image digest, then each step's key). */
  parent: string;
  /** The instruction after expansion, flags included. */
  instruction: string;
  /** Digest of the build args and env the step can see (plus user, workdir, shell, platform). */
  env: string;
  /** Digest of the files the step reads (COPY/ADD sources, RUN bind mounts), or '' when none. */
  sources: string;
}

export interface CachedLayer {
  digest: Digest;
  diffId: Digest;
  size: number;
  mediaType: string;
}

export interface CacheEntry {
  version: 1;
  key: string;
  createdBy: string;
  /** The step changed nothing: history gets empty_layer and no layer is added. */
  emptyLayer: boolean;
  layer?: CachedLayer;
}

export interface CacheHit {
  entry: CacheEntry;
  /** Local path of the compressed blob, when there is a layer. */
  blobPath?: string;
  /** Which store answered. */
  from: 'dir' | 'repo';
  /**
   * Set when the blob's digest is still being checked (it is not the file last checked): resolves
   * once it matches, rejects with CACHE_BLOB_CORRUPT (the entry dropped, so the step misses next
   * time) when it does not. Nothing may read the blob before it resolves.
   */
  verified?: Promise<void>;
}

export interface LayerCache {
  get(key: string): Promise<CacheHit | null>;
  put(entry: CacheEntry, blobPath?: string): Promise<void>;
  /** The parts of the last key seen for a step slot, to explain a miss. */
  previousParts(slot: string): Promise<KeyParts | null>;
  rememberParts(slot: string, parts: KeyParts): Promise<void>;
}
