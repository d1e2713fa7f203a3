import type { Digest } from './image/types.ts';
import type { Rung } from './isolation/types.ts';

export interface StepReport {
  stage: string;
  /** e.g. `RUN apt-get install -y curl` after expansion (secrets never appear here). */
  instruction: string;
  line: number;
  durationMs: number;
  cache: 'hit' | 'miss' | 'none';
  /** On a miss with the cache on: which input changed. */
  cacheReason?: string;
}

export interface BuildResult {
  /** Manifest digest of the built image. */
  digest: Digest;
  /** Config digest (docker's "image id"). */
  imageId: Digest;
  /** Every destination, with tag, as given. */
  destinations: string[];
  pushed: boolean;
  /** Compressed size of config + layers. */
  size: number;
  layers: number;
  isolation: { rung: Rung; reason: string };
  steps: StepReport[];
  durationMs: number;
}
