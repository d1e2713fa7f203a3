/**
 * Image assembly: turns a config and its layers into the exact config and manifest bytes whose
 * digests identify the image. Both are canonical JSON so the same inputs always give the same
 * digest. The output format decides the media types: OCI image-spec or Docker v2 schema 2.
 */
import { KilnError } from '../util/errors.ts';
import { canonicalJson, isDigest, sha256Digest } from './digest.ts';
import { placeAnnotations } from './annotations.ts';
import {
  MediaType,
  type BuiltImage,
  type Descriptor,
  type ImageConfig,
  type LayerBlob,
  type Manifest,
} from './types.ts';

export type ImageFormat = 'oci' | 'docker';

export interface AssembleOptions {
  config: ImageConfig;
  layers: LayerBlob[];
  format: ImageFormat;
  /**
   * `--annotation` values, keys as metadata-action writes them (`manifest:k`, `index:k`,
   * `manifest-descriptor:k`, a platform list in brackets, or no type for the manifest). OCI only:
   * Docker schema 2 has no annotations, so they are dropped there.
   */
  annotations?: Record<string, string>;
}

/** The layer media type in the requested format; throws FORMAT_UNSUPPORTED when there is none. */
export function convertLayerMediaType(mediaType: string, to: ImageFormat): string {
  if (to === 'oci') {
    if (mediaType === MediaType.DockerLayerGzip) return MediaType.OciLayerGzip;
    return mediaType;
  }
  switch (mediaType) {
    case MediaType.OciLayerGzip:
    case MediaType.DockerLayerGzip:
      return MediaType.DockerLayerGzip;
    case MediaType.DockerForeignLayerGzip:
      return mediaType;
    default:
      throw new KilnError(
        'usage',
        'FORMAT_UNSUPPORTED',
        `layer media type ${mediaType} cannot be stored in a Docker v2 manifest`,
        {
          hint: 'Docker manifests only hold gzip layers: use the OCI output format, or gzip layer compression',
        },
      );
  }
}

function convertConfigMediaType(mediaType: string, to: ImageFormat): string {
  if (mediaType === MediaType.OciConfig || mediaType === MediaType.DockerConfig) {
    return to === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig;
  }
  if (to === 'docker') {
    throw new KilnError(
      'usage',
      'FORMAT_UNSUPPORTED',
      `config media type ${mediaType} cannot be stored in a Docker v2 manifest`,
      {
        hint: 'use the OCI output format for artifacts that are not container images',
      },
    );
  }
  return mediaType;
}

/** The same manifest with the media types of the other format (config and layer bytes are unchanged). */
export function convertManifest(manifest: Manifest, to: ImageFormat): Manifest {
  const out: Manifest = {
    schemaVersion: 2,
    mediaType: to === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest,
    config: { ...manifest.config, mediaType: convertConfigMediaType(manifest.config.mediaType, to) },
    layers: manifest.layers.map((l) => ({ ...l, mediaType: convertLayerMediaType(l.mediaType, to) })),
  };
  if (to === 'oci') {
    if (manifest.artifactType !== undefined) out.artifactType = manifest.artifactType;
    if (manifest.subject !== undefined) out.subject = manifest.subject;
    if (manifest.annotations !== undefined) out.annotations = manifest.annotations;
  }
  return out;
}

export function assembleImage(opts: AssembleOptions): BuiltImage {
  const { layers, format } = opts;
  for (const l of layers) {
    if (!isDigest(l.diffId) || !isDigest(l.descriptor.digest)) {
      throw new KilnError(
        'internal',
        'BAD_DIGEST',
        `layer has an invalid digest or diff_id: ${l.descriptor.digest} / ${l.diffId}`,
      );
    }
  }
  const config: ImageConfig = {
    ...opts.config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  };
  const configBytes = Buffer.from(canonicalJson(config), 'utf8');

  const layerDescriptors: Descriptor[] = layers.map((l) => ({
    ...l.descriptor,
    mediaType: convertLayerMediaType(l.descriptor.mediaType, format),
  }));
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest,
    config: {
      mediaType: format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig,
      digest: sha256Digest(configBytes),
      size: configBytes.length,
    },
    layers: layerDescriptors,
  };
  const placed =
    format === 'oci' && opts.annotations
      ? placeAnnotations(opts.annotations, {
          os: config.os,
          architecture: config.architecture,
          ...(config.variant ? { variant: config.variant } : {}),
        })
      : undefined;
  if (placed && Object.keys(placed.manifest).length > 0) manifest.annotations = placed.manifest;
  const manifestBytes = Buffer.from(canonicalJson(manifest), 'utf8');
  return {
    config,
    configBytes,
    manifest,
    manifestBytes,
    digest: sha256Digest(manifestBytes),
    layers: layers.map((l, i) => ({ ...l, descriptor: layerDescriptors[i]! })),
    ...(placed && Object.keys(placed.manifestDescriptor).length
      ? { descriptorAnnotations: placed.manifestDescriptor }
      : {}),
    ...(placed && Object.keys(placed.index).length ? { indexAnnotations: placed.index } : {}),
  };
}
