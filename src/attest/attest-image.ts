/**
 * The attestations of one built image: the SBOM (from its layers) and the provenance, each an
 * in-toto statement about the image manifest's digest, serialised once so every consumer (push,
 * files on disk, signatures) sees the same bytes.
 */
import type { BuiltImage } from '../image/types.ts';
import { canonicalJson } from '../image/digest.ts';
import { inventory, scanLayers, type ScanLayer } from './layer-scan.ts';
import { toSpdx } from './spdx.ts';
import { buildProvenance, type ProvenanceInputs, type ProvenanceMode } from './provenance.ts';
import { PredicateType, statement, type AttestationBlob, type Subject } from './statement.ts';

export type SbomFormat = 'spdx' | 'cyclonedx';

export interface AttestRequest {
  image: BuiltImage;
  layers: ScanLayer[];
  subject: Subject;
  /** Image name shown in the SBOM. */
  name: string;
  /** ISO time for the SBOM's creation (the clamp on reproducible builds). */
  created: string;
  sbom?: { format: SbomFormat };
  provenance?: { mode: ProvenanceMode; inputs: Omit<ProvenanceInputs, 'mode'> };
}

export interface Attestations {
  statements: AttestationBlob[];
  /** The SBOM document alone (SPDX or CycloneDX JSON), for --sbom-output. */
  sbomDocument?: string;
  /** The provenance statement, for --provenance-output. */
  provenanceStatement?: string;
  packages?: number;
}

export async function createAttestations(req: AttestRequest): Promise<Attestations> {
  const out: Attestations = { statements: [] };
  if (req.sbom) {
    const inv = inventory(await scanLayers(req.layers));
    const target = { name: req.name, digest: req.image.digest, created: req.created };
    const cdx = req.sbom.format === 'cyclonedx';
    // The CycloneDX library (and its validators) loads only when a CycloneDX SBOM is asked for.
    const doc: unknown = cdx
      ? JSON.parse((await import('./cyclonedx.ts')).toCycloneDx(inv, target))
      : toSpdx(inv, target);
    const predicateType = cdx ? PredicateType.CycloneDx : PredicateType.Spdx;
    out.statements.push({
      predicateType,
      bytes: Buffer.from(canonicalJson(statement(req.subject, predicateType, doc)), 'utf8'),
    });
    out.sbomDocument = `${JSON.stringify(doc, null, 2)}\n`;
    out.packages = inv.packages.length;
  }
  if (req.provenance) {
    const pred = buildProvenance({ ...req.provenance.inputs, mode: req.provenance.mode });
    const st = statement(req.subject, PredicateType.SlsaProvenanceV1, pred);
    out.statements.push({
      predicateType: PredicateType.SlsaProvenanceV1,
      bytes: Buffer.from(canonicalJson(st), 'utf8'),
    });
    out.provenanceStatement = `${JSON.stringify(st, null, 2)}\n`;
  }
  return out;
}
