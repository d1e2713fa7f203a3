/**
 * Reads an attestation manifest's in-toto layers and summarises each statement: an SBOM's format
 * and package count, a provenance's builder and dependencies. Written against the formats (SPDX
 * 2.3, CycloneDX, SLSA v1), not kiln's own types, so that BuildKit's attestations read too.
 */
import type { Manifest } from '../image/types.ts';
import type { SbomSummary, ProvenanceSummary, StatementSummary } from './report.ts';

export const IN_TOTO_LAYER = 'application/vnd.in-toto+json';

type Json = Record<string, unknown>;

function obj(v: unknown): Json {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function spdxSummary(p: Json): SbomSummary {
  const described = new Set(arr(p.documentDescribes).map(str));
  const packages = arr(p.packages).filter((x) => !described.has(str(obj(x).SPDXID)));
  const creator = arr(obj(p.creationInfo).creators).map(str).find(Boolean);
  return {
    format: 'spdx',
    version: str(p.spdxVersion) ?? '?',
    packages: packages.length,
    ...(creator ? { creator } : {}),
  };
}

function cyclonedxSummary(p: Json): SbomSummary {
  const tools = obj(obj(p.metadata).tools);
  const tool = arr(tools.components ?? obj(p.metadata).tools)
    .map((t) => str(obj(t).name))
    .find(Boolean);
  return {
    format: 'cyclonedx',
    version: str(p.specVersion) ?? '?',
    packages: arr(p.components).length,
    ...(tool ? { creator: `Tool: ${tool}` } : {}),
  };
}

function provenanceSummary(p: Json): ProvenanceSummary {
  const def = obj(p.buildDefinition);
  const run = obj(p.runDetails);
  const invocationId = str(obj(run.metadata).invocationId);
  const request = obj(obj(def.externalParameters).request);
  const platform = str(request.platform) ?? str(obj(request.args).platform);
  return {
    builderId: str(obj(run.builder).id) ?? '?',
    buildType: str(def.buildType) ?? '?',
    dependencies: arr(def.resolvedDependencies).map((d) => {
      const r = obj(d);
      const sha = str(obj(r.digest).sha256);
      return `${str(r.uri) ?? str(r.name) ?? '?'}${sha ? `@sha256:${sha}` : ''}`;
    }),
    ...(invocationId ? { invocationId } : {}),
    ...(platform ? { platform } : {}),
  };
}

/** One statement blob, summarised; a blob that is not a statement is reported, not thrown. */
export function summarizeStatement(digest: string, predicateType: string, bytes: Buffer): StatementSummary {
  let st: Json;
  try {
    st = obj(JSON.parse(bytes.toString('utf8')));
  } catch (e) {
    return { predicateType, digest, subjects: [], error: `not JSON: ${(e as Error).message}` };
  }
  const type = str(st.predicateType) ?? predicateType;
  const predicate = obj(st.predicate);
  const out: StatementSummary = {
    predicateType: type,
    digest,
    subjects: arr(st.subject).map((s) => ({
      name: str(obj(s).name) ?? '',
      digest: `sha256:${str(obj(obj(s).digest).sha256) ?? '?'}`,
    })),
  };
  if (type.startsWith('https://spdx.dev/Document')) out.sbom = spdxSummary(predicate);
  else if (type.startsWith('https://cyclonedx.org/bom')) out.sbom = cyclonedxSummary(predicate);
  else if (type.startsWith('https://slsa.dev/provenance/')) out.provenance = provenanceSummary(predicate);
  return out;
}

/** The statement layers of an attestation manifest, with the predicate type each is annotated with. */
export function statementLayers(m: Manifest): Array<{ digest: string; size: number; predicateType: string }> {
  return m.layers
    .filter((l) => l.mediaType === IN_TOTO_LAYER)
    .map((l) => ({
      digest: l.digest,
      size: l.size,
      predicateType: l.annotations?.['in-toto.io/predicate-type'] ?? '',
    }));
}
