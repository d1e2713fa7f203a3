/**
 * `--annotation` keys as docker/metadata-action and buildx write them: `manifest:k`, `index:k`,
 * `manifest-descriptor:k`, `index-descriptor:k`, each optionally for some platforms only
 * (`manifest[linux/amd64,linux/arm64]:k`); a key without a type is a manifest annotation.
 */
import { formatPlatform, parsePlatform } from './platform.ts';
import type { Platform } from './types.ts';

export const ANNOTATION_TYPES = ['manifest', 'index', 'manifest-descriptor', 'index-descriptor'] as const;
export type AnnotationType = (typeof ANNOTATION_TYPES)[number];

export interface PlacedAnnotations {
  /** On the image manifest. */
  manifest: Record<string, string>;
  /** On the descriptor that points at the manifest (an OCI layout's index.json entry). */
  manifestDescriptor: Record<string, string>;
  /** On an image index, and on the descriptor that points at one. */
  index: Record<string, string>;
  indexDescriptor: Record<string, string>;
  /** Keys whose platform list does not name the platform being built. */
  otherPlatforms: string[];
}

const PREFIX = /^(manifest|index|manifest-descriptor|index-descriptor)(?:\[([^\]]*)\])?:(.+)$/;

const FIELD: Record<AnnotationType, keyof Omit<PlacedAnnotations, 'otherPlatforms'>> = {
  manifest: 'manifest',
  index: 'index',
  'manifest-descriptor': 'manifestDescriptor',
  'index-descriptor': 'indexDescriptor',
};

export function placeAnnotations(all: Record<string, string>, platform: Platform): PlacedAnnotations {
  const out: PlacedAnnotations = {
    manifest: {},
    manifestDescriptor: {},
    index: {},
    indexDescriptor: {},
    otherPlatforms: [],
  };
  const built = formatPlatform(platform);
  for (const [raw, value] of Object.entries(all)) {
    const m = PREFIX.exec(raw);
    if (!m) {
      out.manifest[raw] = value;
      continue;
    }
    const [, type, platforms, key] = m as unknown as [string, AnnotationType, string | undefined, string];
    if (platforms !== undefined) {
      const wanted = platforms.split(',').map((p) => formatPlatform(parsePlatform(p.trim())));
      if (!wanted.includes(built)) {
        out.otherPlatforms.push(raw);
        continue;
      }
    }
    out[FIELD[type]][key] = value;
  }
  return out;
}
