/** Job summary and outputs of the action, computed from the kiln BuildResult. */
import type { BuildResult } from '../../result.ts';

export interface SummaryCell {
  data: string;
  header?: boolean;
}
export type SummaryRow = (SummaryCell | string)[];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Rows of the image table: what was built, which tags name it, where it went, and how. */
export function imageTable(result: BuildResult): SummaryRow[] {
  const hits = result.steps.filter((s) => s.cache === 'hit').length;
  const cached = result.steps.filter((s) => s.cache !== 'none').length;
  const tags = result.destinations;
  return [
    [
      { data: 'Field', header: true },
      { data: 'Value', header: true },
    ],
    ['Tags', tags.length ? tags.map((t) => `<code>${esc(t)}</code>`).join('<br>') : '(none)'],
    ['Pushed', result.pushed ? 'yes' : 'no'],
    ['Digest', `<code>${result.digest}</code>${result.platforms ? ' (image index)' : ''}`],
    ...(result.platforms
      ? [
          [
            'Platforms',
            result.platforms.map((p) => `${esc(p.platform)}: <code>${p.digest}</code>`).join('<br>'),
          ],
        ]
      : []),
    ['Image ID', `<code>${result.imageId}</code>`],
    ['Size', formatBytes(result.size)],
    ['Layers', String(result.layers)],
    ['Isolation', `${esc(result.isolation.rung)} (${esc(result.isolation.reason)})`],
    ['Cache', cached ? `${hits}/${cached} steps from cache` : 'off'],
    ['Duration', formatMs(result.durationMs)],
  ];
}

/** Rows of the steps table: stage, instruction, time, cache status. */
export function stepsTable(result: BuildResult): SummaryRow[] {
  return [
    [
      { data: 'Stage', header: true },
      { data: 'Line', header: true },
      { data: 'Instruction', header: true },
      { data: 'Time', header: true },
      { data: 'Cache', header: true },
    ],
    ...result.steps.map((s) => [
      esc(s.stage),
      String(s.line),
      `<code>${esc(s.instruction.length > 120 ? `${s.instruction.slice(0, 117)}...` : s.instruction)}</code>`,
      formatMs(s.durationMs),
      s.cache === 'miss' && s.cacheReason ? `miss (${esc(s.cacheReason)})` : s.cache,
    ]),
  ];
}

const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/** What the digest names: an index when attestations (or platforms) sit beside the image. */
export function digestMediaType(result: BuildResult, format: 'oci' | 'docker'): string {
  const index =
    (result.platforms?.length ?? 0) > 1 ||
    (result.imageDigest !== undefined && result.imageDigest !== result.digest);
  if (format === 'docker') return index ? MEDIA.dockerList : MEDIA.dockerManifest;
  return index ? MEDIA.ociIndex : MEDIA.ociManifest;
}

export interface MetadataFacts {
  format: 'oci' | 'docker';
  /** The descriptor's size, when an OCI layout written by the build tells it. */
  size?: number;
  /** buildx.build.ref: an id of this build (builder/node/ref in buildx). */
  buildRef: string;
}

/** The `metadata` output: buildx's metadata-file keys, plus kiln's result. */
export function metadata(result: BuildResult, f: MetadataFacts): Record<string, unknown> {
  return {
    'buildx.build.ref': f.buildRef,
    'containerimage.config.digest': result.imageId,
    'containerimage.descriptor': {
      mediaType: digestMediaType(result, f.format),
      digest: result.digest,
      ...(f.size !== undefined ? { size: f.size } : {}),
    },
    'containerimage.digest': result.digest,
    'image.name': result.destinations.join(','),
    // A build of several platforms: each platform's image manifest (the descriptor names the index).
    ...(result.platforms ? { 'kiln.platforms': result.platforms } : {}),
    'kiln.result': result,
  };
}
