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

export interface SignatureReport {
  /** The signed manifest (image, index or attestation manifest). */
  subject: Digest;
  /** `repo:sha256-<hex>.sig` as pushed. */
  tag: string;
  /** Digest of the signature manifest. */
  digest: Digest;
  keyless: boolean;
}

/** The attestations of one image: its attestation manifest (when pushed) and statements. */
export interface AttestationReport {
  manifest?: Digest;
  /** predicate type → statement blob digest */
  statements: Record<string, Digest>;
  packages?: number;
}

export interface PlatformImage {
  /** `os/arch[/variant]` of the image's config. */
  platform: string;
  /** Its image manifest. */
  digest: Digest;
  /** Its own SBOM / provenance, made from its layers and config. */
  attestations?: AttestationReport;
}

export interface BuildResult {
  /**
   * What the tags name: the image manifest, the index holding it and its attestations, or (several
   * platforms) the image index of every platform's image.
   */
  digest: Digest;
  /** A build of several platforms: each platform's image manifest, in the order asked. */
  platforms?: PlatformImage[];
  /** The image manifest (equal to `digest` without attestations). */
  imageDigest?: Digest;
  /** One image's attestations (with several platforms, each platform's are in `platforms`). */
  attestations?: AttestationReport;
  signatures?: SignatureReport[];
  /** Config digest (docker's "image id"); with several platforms, the first platform's. */
  imageId: Digest;
  /** Every destination, with tag, as given. */
  destinations: string[];
  pushed: boolean;
  /** Compressed size of config + layers (of every platform's image). */
  size: number;
  /** Layers of the image (of the first platform's, with several). */
  layers: number;
  isolation: { rung: Rung; reason: string };
  steps: StepReport[];
  durationMs: number;
}
