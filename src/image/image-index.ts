/**
 * The image index of a multi-platform build: one entry per platform's image manifest, with the
 * platform of its config, as an OCI image index, or a Docker manifest list with `--format docker`.
 * Canonical JSON, so the same images always give the same index digest.
 */
import { canonicalJson, sha256Digest } from './digest.ts';
import {
  MediaType,
  type BuiltImage,
  type Descriptor,
  type ImageConfig,
  type Index,
  type Platform,
} from './types.ts';
import type { ImageFormat } from './assemble.ts';

export interface BuiltIndex {
  index: Index;
  indexBytes: Buffer;
  digest: string;
  mediaType: string;
  /** The images it names, in its order. */
  images: BuiltImage[];
}

export function configPlatform(c: ImageConfig): Platform {
  return { architecture: c.architecture, os: c.os, ...(c.variant ? { variant: c.variant } : {}) };
}

export function manifestDescriptor(image: BuiltImage): Descriptor {
  return {
    mediaType: image.manifest.mediaType ?? MediaType.OciManifest,
    digest: image.digest,
    size: image.manifestBytes.length,
  };
}

export function assembleIndex(images: BuiltImage[], format: ImageFormat): BuiltIndex {
  const mediaType = format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList;
  const index: Index = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((img) => ({
      ...manifestDescriptor(img),
      platform: configPlatform(img.config),
      ...(format === 'oci' && img.descriptorAnnotations ? { annotations: img.descriptorAnnotations } : {}),
    })),
  };
  // `--annotation index:k` is the same for every platform's image (only its own platform list differs).
  const annotations = Object.assign({}, ...images.map((i) => i.indexAnnotations ?? {})) as Record<
    string,
    string
  >;
  if (format === 'oci' && Object.keys(annotations).length) index.annotations = annotations;
  const indexBytes = Buffer.from(canonicalJson(index), 'utf8');
  return { index, indexBytes, digest: sha256Digest(indexBytes), mediaType, images };
}
