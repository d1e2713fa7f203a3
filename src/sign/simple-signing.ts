/**
 * What cosign signs and where it keeps it (cosign's spec, docs/SIGNATURE_SPEC.md): the "simple
 * signing" payload naming the manifest digest, stored as a layer of an OCI manifest tagged
 * `sha256-<hex>.sig` in the image's repository, the base64 signature in the layer annotation
 * `dev.cosignproject.cosign/signature` (keyless adds the certificate, chain and Rekor bundle).
 */
import { canonicalJson, sha256Digest } from '../image/digest.ts';
import {
  MediaType,
  type BuiltImage,
  type ImageConfig,
  type LayerBlob,
  type Manifest,
} from '../image/types.ts';

export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate';
export const CHAIN_ANNOTATION = 'dev.sigstore.cosign/chain';
export const BUNDLE_ANNOTATION = 'dev.sigstore.cosign/bundle';

/** The payload `cosign sign` writes (same fields, same order: cosign verifies the bytes it stored). */
export function simpleSigningPayload(dockerReference: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': dockerReference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
    'utf8',
  );
}

export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/** The `.sig` manifest holding one signed payload, as a pushable image. */
export function signatureImage(
  payload: Buffer,
  annotations: Record<string, string>,
): { image: BuiltImage; blobs: Map<string, Buffer> } {
  const digest = sha256Digest(payload);
  const layer: LayerBlob = {
    descriptor: { mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest, size: payload.length, annotations },
    diffId: digest,
  };
  const config: ImageConfig = {
    architecture: '',
    os: '',
    config: {},
    rootfs: { type: 'layers', diff_ids: [digest] },
  };
  const configBytes = Buffer.from(canonicalJson(config), 'utf8');
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: sha256Digest(configBytes), size: configBytes.length },
    layers: [layer.descriptor],
  };
  const manifestBytes = Buffer.from(canonicalJson(manifest), 'utf8');
  return {
    image: {
      config,
      configBytes,
      manifest,
      manifestBytes,
      digest: sha256Digest(manifestBytes),
      layers: [layer],
    },
    blobs: new Map([[digest, payload]]),
  };
}
