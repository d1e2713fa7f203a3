/** in-toto Statement v1: the envelope every kiln attestation is (https://in-toto.io/Statement/v1). */
import type { Digest } from '../image/types.ts';
import { digestHex } from '../image/digest.ts';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PredicateType = {
  SlsaProvenanceV1: 'https://slsa.dev/provenance/v1',
  Spdx: 'https://spdx.dev/Document',
  CycloneDx: 'https://cyclonedx.org/bom',
} as const;

export interface Subject {
  name: string;
  digest: { sha256: string };
}

export interface Statement<P = unknown> {
  _type: typeof STATEMENT_TYPE;
  subject: Subject[];
  predicateType: string;
  predicate: P;
}

/** BuildKit names the subject `pkg:docker/<repo>@<tag>?platform=<os/arch>` (a purl). */
export function imageSubject(
  repository: string | undefined,
  tag: string | undefined,
  platform: string,
  digest: Digest,
): Subject {
  const name = repository
    ? `pkg:docker/${repository}${tag ? `@${encodeURIComponent(tag)}` : ''}?platform=${encodeURIComponent(platform)}`
    : `pkg:oci/image?platform=${encodeURIComponent(platform)}`;
  return { name, digest: { sha256: digestHex(digest) } };
}

export function statement<P>(subject: Subject, predicateType: string, predicate: P): Statement<P> {
  return { _type: STATEMENT_TYPE, subject: [subject], predicateType, predicate };
}

/** A serialised statement and its predicate type: what goes into an attestation manifest layer. */
export interface AttestationBlob {
  predicateType: string;
  bytes: Buffer;
}
