/**
 * CycloneDX 1.6 JSON through @cyclonedx/cyclonedx-library (which also validates it). Bom-refs are
 * the purls and there is no serial number, so the same image always gives the same bytes.
 */
import * as CDX from '@cyclonedx/cyclonedx-library';
import { VERSION } from '../version.ts';
import type { Inventory } from './layer-scan.ts';
import { purl } from './packages.ts';
import type { SbomTarget } from './spdx.ts';

export const CYCLONEDX_SPEC = CDX.Spec.Spec1dot6;

export function toCycloneDx(inv: Inventory, target: SbomTarget): string {
  const bom = new CDX.Models.Bom();
  bom.metadata.timestamp = new Date(target.created);
  bom.metadata.tools.components.add(
    new CDX.Models.Component(CDX.Enums.ComponentType.Application, 'kiln', { version: VERSION }),
  );
  bom.metadata.component = new CDX.Models.Component(CDX.Enums.ComponentType.Container, target.name, {
    version: target.digest,
    bomRef: `image:${target.digest}`,
  });
  const refs = new Set<string>();
  for (const p of inv.packages) {
    const url = purl(p, inv.distro);
    if (refs.has(url)) continue;
    refs.add(url);
    const c = new CDX.Models.Component(CDX.Enums.ComponentType.Library, p.name, {
      version: p.version,
      bomRef: url,
    });
    // The library takes the purl as a string-able object; the purl spec string is what ends up in JSON.
    (c as { purl?: unknown }).purl = { toString: () => url };
    if (p.license) c.licenses.add(new CDX.Models.NamedLicense(p.license));
    c.properties.add(new CDX.Models.Property('kiln:package:location', p.location));
    bom.components.add(c);
  }
  const serializer = new CDX.Serialize.JsonSerializer(
    new CDX.Serialize.JSON.Normalize.Factory(CYCLONEDX_SPEC),
  );
  return serializer.serialize(bom, { sortLists: true });
}
