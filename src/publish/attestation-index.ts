/**
 * BuildKit's attestation layout (docs/attestations/attestation-storage.md): the pushed reference
 * becomes an image index holding the image manifest and one attestation manifest, platform
 * unknown/unknown, annotated `vnd.docker.reference.type: attestation-manifest` and
 * `vnd.docker.reference.digest: <image>`, whose layers are in-toto statements. The attestation
 * manifest also names the image as its OCI 1.1 `subject`, so referrers clients find it as well.
 */
import { canonicalJson, sha256Digest } from '../image/digest.ts';
import type { AttestationBlob } from '../attest/statement.ts';
import {
  MediaType,
  type BuiltImage,
  type Descriptor,
  type ImageConfig,
  type Index,
  type LayerBlob,
  type Manifest,
  type Platform,
} from '../image/types.ts';

export const IN_TOTO_MEDIA_TYPE = 'application/vnd.in-toto+json';
export const PREDICATE_TYPE_ANNOTATION = 'in-toto.io/predicate-type';
export const REFERENCE_TYPE_ANNOTATION = 'vnd.docker.reference.type';
export const REFERENCE_DIGEST_ANNOTATION = 'vnd.docker.reference.digest';
export const ATTESTATION_MANIFEST = 'attestation-manifest';

export interface AttachedImage {
  /** The index pushed under the tags. */
  indexBytes: Buffer;
  indexDigest: string;
  /** The attestation manifest as a pushable image (config + statement layers held in memory). */
  attestation: BuiltImage;
  /** Statement bytes by blob digest, for the push. */
  blobs: Map<string, Buffer>;
}

function descriptorOf(m: BuiltImage): Descriptor {
  return {
    mediaType: m.manifest.mediaType ?? MediaType.OciManifest,
    digest: m.digest,
    size: m.manifestBytes.length,
  };
}

function platformOf(c: ImageConfig): Platform {
  return { architecture: c.architecture, os: c.os, ...(c.variant ? { variant: c.variant } : {}) };
}

/** The attestation manifest for `image` and the index that holds both. */
export function attachAttestations(image: BuiltImage, statements: AttestationBlob[]): AttachedImage {
  const blobs = new Map<string, Buffer>();
  const layers: LayerBlob[] = statements.map((s) => {
    const digest = sha256Digest(s.bytes);
    blobs.set(digest, s.bytes);
    return {
      descriptor: {
        mediaType: IN_TOTO_MEDIA_TYPE,
        digest,
        size: s.bytes.length,
        annotations: { [PREDICATE_TYPE_ANNOTATION]: s.predicateType },
      },
      diffId: digest,
    };
  });
  const config: ImageConfig = {
    architecture: 'unknown',
    os: 'unknown',
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  };
  const configBytes = Buffer.from(canonicalJson(config), 'utf8');
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: sha256Digest(configBytes), size: configBytes.length },
    layers: layers.map((l) => l.descriptor),
    subject: descriptorOf(image),
    // So that a referrers listing (which copies manifest annotations) tells what this is.
    annotations: {
      [REFERENCE_DIGEST_ANNOTATION]: image.digest,
      [REFERENCE_TYPE_ANNOTATION]: ATTESTATION_MANIFEST,
    },
  };
  const manifestBytes = Buffer.from(canonicalJson(manifest), 'utf8');
  const attestation: BuiltImage = {
    config,
    configBytes,
    manifest,
    manifestBytes,
    digest: sha256Digest(manifestBytes),
    layers,
  };
  const index: Index = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      { ...descriptorOf(image), platform: platformOf(image.config) },
      {
        ...descriptorOf(attestation),
        annotations: {
          [REFERENCE_DIGEST_ANNOTATION]: image.digest,
          [REFERENCE_TYPE_ANNOTATION]: ATTESTATION_MANIFEST,
        },
        platform: { architecture: 'unknown', os: 'unknown' },
      },
    ],
  };
  const indexBytes = Buffer.from(canonicalJson(index), 'utf8');
  return { indexBytes, indexDigest: sha256Digest(indexBytes), attestation, blobs };
}
