/**
 * build-push-action's `provenance`, `sbom` and `attests` as kiln `--attest` values, with buildx's
 * default: provenance is added when the image is exported as an image (pushed or written as an OCI
 * layout), not with the docker exporter, not with BUILDX_NO_DEFAULT_ATTESTATIONS set; mode=max for a
 * public repository and mode=min for a private one (read from the event payload).
 */
import { readFileSync } from 'node:fs';

const isFalse = (v: string): boolean => /^(false|0)$/i.test(v);
const isTrue = (v: string): boolean => /^(true|1)$/i.test(v);

function typeOf(attest: string): string {
  return /(?:^|,)\s*type=([^,]*)/.exec(attest)?.[1]?.trim() ?? '';
}

/** One of build-push-action's provenance/sbom shorthands as an --attest value ('' = none). */
function shorthand(type: 'provenance' | 'sbom', v: string): string {
  if (isTrue(v)) return `type=${type}`;
  if (isFalse(v)) return `type=${type},disabled=true`;
  return `type=${type},${v}`;
}

/** Whether the workflow's repository is private, from GITHUB_EVENT_PATH (unknown → private). */
export function repositoryIsPrivate(env: NodeJS.ProcessEnv): boolean {
  try {
    const payload = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH ?? '', 'utf8')) as {
      repository?: { private?: boolean };
    };
    return payload.repository?.private !== false;
  } catch {
    return true;
  }
}

export interface AttestFacts {
  provenance: string;
  sbom: string;
  attests: string[];
  /** The image leaves the build as an image (registry or OCI layout). */
  exportsImage: boolean;
  dockerExporter: boolean;
  env: NodeJS.ProcessEnv;
}

/**
 * buildx's default provenance applies to this step (one platform or several: each platform's
 * image gets its own, as BuildKit's).
 */
export function defaultProvenanceApplies(f: AttestFacts): boolean {
  const provInAttests = f.attests.some((a) => typeOf(a) === 'provenance');
  const noDefault = /^(true|1)$/i.test(f.env.BUILDX_NO_DEFAULT_ATTESTATIONS ?? '');
  return !f.provenance && !provInAttests && !noDefault && f.exportsImage && !f.dockerExporter;
}

export function attestArgs(f: AttestFacts): string[] {
  const out: string[] = [];
  if (f.provenance) out.push(shorthand('provenance', f.provenance));
  else if (defaultProvenanceApplies(f))
    out.push(`type=provenance,mode=${repositoryIsPrivate(f.env) ? 'min' : 'max'}`);
  if (f.sbom) out.push(shorthand('sbom', f.sbom));
  // The provenance and sbom inputs win over the same type in attests, as in build-push-action.
  for (const a of f.attests) {
    const t = typeOf(a);
    if ((t === 'provenance' && f.provenance) || (t === 'sbom' && f.sbom)) continue;
    out.push(a);
  }
  // kiln writes nothing for a disabled attestation; drop them so the argv stays minimal.
  return out.filter((a) => !/(?:^|,)disabled=true(?:,|$)/.test(a));
}
