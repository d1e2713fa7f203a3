/**
 * SLSA provenance v1 (https://slsa.dev/spec/v1.0/provenance) for one image, shaped like BuildKit's
 * (docs/attestations/slsa-definitions.md): `min` has the Dockerfile digest, build parameters,
 * materials and run details; `max` adds the Dockerfile itself and the list of build steps.
 * Build secrets are never parameters (they reach RUN through mounts only), and nothing here takes a
 * wall-clock time when the build is clamped: the caller passes the times or none.
 */
import { VERSION } from '../version.ts';
import type { Digest } from '../image/types.ts';
import { digestHex } from '../image/digest.ts';
import type { BuildEnvironment } from './ci-env.ts';

/** URNs: kiln has no web home to point a resolvable URL at; the README documents both. */
export const KILN_BUILD_TYPE = 'urn:kiln:buildtype:dockerfile:v1';
export const KILN_BUILDER_ID = 'urn:kiln:builder:cli';

export type ProvenanceMode = 'min' | 'max';

export interface ResourceDescriptor {
  uri: string;
  digest: Record<string, string>;
  name?: string;
  content?: string;
}

export interface ProvenanceStep {
  stage: string;
  instruction: string;
  line: number;
}

export interface ProvenanceInputs {
  mode: ProvenanceMode;
  dockerfile: { path: string; digest: Digest; text: string };
  target?: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  /** os/arch[/variant] */
  platform: string;
  builderPlatform: string;
  /** Every base and `--from` image, pinned (`registry/repo@sha256:…` or `…:tag@sha256:…`). */
  baseImages: string[];
  /** The context when it was a remote one (git or tarball URL), credentials removed. */
  contextUrl?: string;
  env: BuildEnvironment;
  steps: ProvenanceStep[];
  /** ISO times; absent on reproducible builds. */
  startedOn?: string;
  finishedOn?: string;
  reproducible: boolean;
}

export interface SlsaProvenanceV1 {
  buildDefinition: {
    buildType: string;
    externalParameters: Record<string, unknown>;
    internalParameters: Record<string, unknown>;
    resolvedDependencies: ResourceDescriptor[];
  };
  runDetails: {
    builder: { id: string; version: Record<string, string> };
    metadata: { invocationId?: string; startedOn?: string; finishedOn?: string };
    byproducts?: ResourceDescriptor[];
  };
}

/** `docker.io/library/debian:bookworm@sha256:…` → a purl with the digest apart. */
export function dependencyOf(pinned: string, platform: string): ResourceDescriptor | undefined {
  const at = pinned.lastIndexOf('@');
  if (at < 0) return undefined;
  const digest = pinned.slice(at + 1);
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) return undefined;
  let name = pinned.slice(0, at);
  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  const uri = `pkg:docker/${name}${tag ? `@${encodeURIComponent(tag)}` : ''}?platform=${encodeURIComponent(platform)}`;
  return { uri, digest: { sha256: digestHex(digest) } };
}

function configSource(inp: ProvenanceInputs): Record<string, unknown> {
  const src = inp.contextUrl ? { uri: inp.contextUrl } : inp.env.source;
  return {
    ...(src ? { uri: src.uri } : {}),
    ...(inp.env.source?.commit && !inp.contextUrl ? { digest: { sha1: inp.env.source.commit } } : {}),
    path: inp.dockerfile.path,
  };
}

export function buildProvenance(inp: ProvenanceInputs): SlsaProvenanceV1 {
  const args: Record<string, string> = {};
  for (const k of Object.keys(inp.buildArgs).sort()) args[`build-arg:${k}`] = inp.buildArgs[k]!;
  for (const k of Object.keys(inp.labels).sort()) args[`label:${k}`] = inp.labels[k]!;
  if (inp.target) args.target = inp.target;
  const deps: ResourceDescriptor[] = [];
  for (const b of inp.baseImages) {
    const d = dependencyOf(b, inp.platform);
    if (d && !deps.some((x) => x.uri === d.uri && x.digest.sha256 === d.digest.sha256)) deps.push(d);
  }
  const dockerfile: ResourceDescriptor = {
    uri: inp.env.source
      ? `${inp.env.source.uri.replace(/\.git$/, '')}/${inp.dockerfile.path}`
      : `file:${inp.dockerfile.path}`,
    digest: { sha256: digestHex(inp.dockerfile.digest) },
  };
  if (inp.mode === 'max') dockerfile.content = Buffer.from(inp.dockerfile.text, 'utf8').toString('base64');
  const internal: Record<string, unknown> = {
    builderPlatform: inp.builderPlatform,
    reproducible: inp.reproducible,
  };
  if (inp.env.ci && Object.keys(inp.env.ci).length) internal.ci = inp.env.ci;
  if (inp.mode === 'max') {
    internal.buildConfig = {
      steps: inp.steps.map((s) => ({ stage: s.stage, line: s.line, instruction: s.instruction })),
    };
  }
  const metadata: SlsaProvenanceV1['runDetails']['metadata'] = {};
  if (inp.env.invocationId) metadata.invocationId = inp.env.invocationId;
  if (inp.startedOn) metadata.startedOn = inp.startedOn;
  if (inp.finishedOn) metadata.finishedOn = inp.finishedOn;
  return {
    buildDefinition: {
      buildType: KILN_BUILD_TYPE,
      externalParameters: {
        configSource: configSource(inp),
        request: { frontend: 'dockerfile', args, platform: inp.platform },
        dockerfile,
      },
      internalParameters: internal,
      resolvedDependencies: deps,
    },
    runDetails: {
      builder: { id: inp.env.builderId ?? KILN_BUILDER_ID, version: { kiln: VERSION } },
      metadata,
    },
  };
}
