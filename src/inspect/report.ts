/** What `kiln inspect` finds attached to an image: the shape of its JSON output and its text. */

export interface ManifestEntry {
  digest: string;
  mediaType: string;
  size: number;
  /** `os/arch[/variant]`, from the index entry or the image config. */
  platform?: string;
}

export interface SbomSummary {
  format: 'spdx' | 'cyclonedx';
  /** `SPDX-2.3`, CycloneDX `1.6`. */
  version: string;
  /** Packages in the document, the image itself not counted. */
  packages: number;
  creator?: string;
}

export interface ProvenanceSummary {
  builderId: string;
  buildType: string;
  /** resolvedDependencies, e.g. base images by digest. */
  dependencies: string[];
  invocationId?: string;
  /** The platform the build was asked for (kiln: `request.platform`; BuildKit: `request.args.platform`). */
  platform?: string;
}

export interface StatementSummary {
  predicateType: string;
  /** The layer (blob) holding the statement. */
  digest: string;
  subjects: Array<{ name: string; digest: string }>;
  sbom?: SbomSummary;
  provenance?: ProvenanceSummary;
  /** Why the statement could not be read, when it could not. */
  error?: string;
}

/** Where an attestation manifest was found: in the tag's index (BuildKit) or the referrers tag. */
export type AttestationSource = 'index' | 'referrers-tag';

export interface AttestationEntry {
  manifest: string;
  /** The image manifest it describes (vnd.docker.reference.digest / subject). */
  subject: string;
  /** That image's platform, from the index entry naming it (a multi-platform index has one per image). */
  platform?: string;
  sources: AttestationSource[];
  statements: StatementSummary[];
}

/**
 * `key`: verified with --key. `certificate`: verified with the key of the certificate it carries
 * (the certificate's chain to Fulcio and the Rekor entry are not checked here). `failed`: does
 * not verify. `unchecked`: a key-based signature and no --key given.
 */
export type SignatureStatus = 'key' | 'certificate' | 'failed' | 'unchecked';

export interface SignatureEntry {
  /** The digest signed: the index, an image manifest or an attestation manifest. */
  subject: string;
  tag: string;
  status: SignatureStatus;
  /** The payload names `subject` (`critical.image.docker-manifest-digest`). */
  payloadMatches: boolean;
  dockerReference?: string;
  keyless: boolean;
  /** Keyless: the certificate's identity (SAN) and OIDC issuer. */
  identity?: string;
  issuer?: string;
  rekorLogIndex?: number;
  reason?: string;
}

export interface InspectReport {
  reference: string;
  digest: string;
  mediaType: string;
  manifests: ManifestEntry[];
  attestations: AttestationEntry[];
  /** Digests looked up for a `.sig` tag and not signed. */
  unsigned: string[];
  signatures: SignatureEntry[];
}
