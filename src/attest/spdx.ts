/**
 * SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/): the SBOM format BuildKit and Kimia
 * attach. Written by hand: it is a flat JSON document and the npm SPDX libraries are unmaintained.
 * One package for the image (what the document describes), one per package found, each CONTAINED
 * by the image.
 */
import { createHash } from 'node:crypto';
import { VERSION } from '../version.ts';
import type { Digest } from '../image/types.ts';
import { digestHex } from '../image/digest.ts';
import type { Inventory } from './layer-scan.ts';
import { purl, type Package } from './packages.ts';

export interface SbomTarget {
  /** Image name for people, e.g. `registry/app:1` (or `image` when there is no destination). */
  name: string;
  /** Manifest digest of the image the SBOM describes. */
  digest: Digest;
  /** ISO time of creation (the clamp on reproducible builds). */
  created: string;
}

export interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  downloadLocation: string;
  filesAnalyzed: boolean;
  licenseConcluded: string;
  licenseDeclared: string;
  copyrightText: string;
  supplier?: string;
  sourceInfo?: string;
  primaryPackagePurpose?: string;
  externalRefs?: Array<{ referenceCategory: string; referenceType: string; referenceLocator: string }>;
}

export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3';
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  documentDescribes: string[];
  packages: SpdxPackage[];
  relationships: Array<{ spdxElementId: string; relationshipType: string; relatedSpdxElement: string }>;
}

const NOASSERTION = 'NOASSERTION';
// A license string used as-is only when it looks like an SPDX expression; free text is NOASSERTION.
const LICENSE_EXPR = /^\(?[A-Za-z0-9.+-]+\)?( (AND|OR|WITH) \(?[A-Za-z0-9.+-]+\)?)*$/;

function spdxId(prefix: string, key: string): string {
  const safe = key.replace(/[^A-Za-z0-9.-]+/g, '-').slice(0, 80);
  return `SPDXRef-${prefix}-${safe}-${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

function pkgEntry(p: Package, inv: Inventory): SpdxPackage {
  const url = purl(p, inv.distro);
  const license = p.license && LICENSE_EXPR.test(p.license) ? p.license : NOASSERTION;
  return {
    SPDXID: spdxId('Package', url),
    name: p.name,
    versionInfo: p.version,
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: license,
    copyrightText: NOASSERTION,
    sourceInfo: `acquired package info from ${p.location}`,
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: url }],
  };
}

export function toSpdx(inv: Inventory, target: SbomTarget): SpdxDocument {
  const root: SpdxPackage = {
    SPDXID: 'SPDXRef-Image',
    name: target.name,
    versionInfo: target.digest,
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    primaryPackagePurpose: 'CONTAINER',
    externalRefs: [
      {
        referenceCategory: 'PACKAGE-MANAGER',
        referenceType: 'purl',
        referenceLocator: `pkg:oci/${encodeURIComponent(target.name.replace(/^.*\//, '').replace(/[:@].*$/, ''))}@${encodeURIComponent(target.digest)}`,
      },
    ],
  };
  const packages = inv.packages.map((p) => pkgEntry(p, inv));
  // purls are unique after inventory's dedup; two packages differing only by name case share one.
  const seen = new Set<string>();
  const unique = packages.filter((p) => !seen.has(p.SPDXID) && !!seen.add(p.SPDXID));
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `sbom-${target.name}`,
    // Unique per image and deterministic (a random UUID would break reproducible builds).
    documentNamespace: `https://spdx.org/spdxdocs/kiln-${digestHex(target.digest)}`,
    // SPDX dates are YYYY-MM-DDThh:mm:ssZ, without fractions.
    creationInfo: { created: target.created.replace(/\.\d+Z$/, 'Z'), creators: [`Tool: kiln-${VERSION}`] },
    documentDescribes: [root.SPDXID],
    packages: [root, ...unique],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: root.SPDXID },
      ...unique.map((p) => ({
        spdxElementId: root.SPDXID,
        relationshipType: 'CONTAINS',
        relatedSpdxElement: p.SPDXID,
      })),
    ],
  };
}
