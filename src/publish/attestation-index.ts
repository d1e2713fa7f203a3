/**
 * BuildKit's attestation layout (docs/attestations/attestation-storage.md): the pushed reference
 * is an image index holding every image manifest and, per image, one attestation manifest,
 * platform unknown/unknown, annotated `vnd.docker.reference.type: attestation-manifest` and
 * `vnd.docker.reference.digest: <that image>`, whose layers are in-toto statements. Each
 * attestation manifest also names its image as its OCI 1.1 `subject`, so referrers clients find it
 * as well. One image (a single-platform build) and several (a multi-platform index) are the same
 * layout: the images first, in order, then their attestation manifests in the same order.
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

/** One image's attestation manifest as a pushable image (config + statement layers held in memory). */
export interface AttestationManifest {
  /** The image manifest it describes. */
  subject: BuiltImage;
  attestation: BuiltImage;
  /** Statement bytes by blob digest, for the push. */
  blobs: Map<string, Buffer>;
}

export interface AttachedImage {
  /** The index pushed under the tags. */
  indexBytes: Buffer;
  indexDigest: string;
  /** The attestation manifest of each attested image, in index order. */
  attestations: AttestationManifest[];
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

/** The attestation manifest of `image`: one in-toto layer per statement, subject the image. */
export function attestationManifest(image: BuiltImage, statements: AttestationBlob[]): AttestationManifest {
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
  return { subject: image, attestation, blobs };
}

/** The index entry of an attestation manifest, as BuildKit writes it. */
export function attestationDescriptor(a: AttestationManifest): Descriptor {
  return {
    ...descriptorOf(a.attestation),
    annotations: {
      [REFERENCE_DIGEST_ANNOTATION]: a.subject.digest,
      [REFERENCE_TYPE_ANNOTATION]: ATTESTATION_MANIFEST,
    },
    platform: { architecture: 'unknown', os: 'unknown' },
  };
}

/**
 * `index` (an OCI index naming the images) with the attestation manifests appended after the
 * image entries; an image without statements gets none.
 */
export function attachToIndex(
  index: Index,
  attested: { image: BuiltImage; statements: AttestationBlob[] }[],
): AttachedImage {
  const attestations = attested
    .filter((a) => a.statements.length > 0)
    .map((a) => attestationManifest(a.image, a.statements));
  const withAtts: Index = {
    ...index,
    manifests: [...index.manifests, ...attestations.map(attestationDescriptor)],
  };
  const indexBytes = Buffer.from(canonicalJson(withAtts), 'utf8');
  return { indexBytes, indexDigest: sha256Digest(indexBytes), attestations };
}

/** The attestation manifest for one image and the index that holds both (a single-platform build). */
export function attachAttestations(image: BuiltImage, statements: AttestationBlob[]): AttachedImage {
  const index: Index = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [{ ...descriptorOf(image), platform: platformOf(image.config) }],
  };
  return attachToIndex(index, [{ image, statements }]);
}
