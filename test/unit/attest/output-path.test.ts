/** Where --sbom-output / --provenance-output go for each platform of a multi-platform build. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { platformOutputPath } from '../../../src/supply-chain.ts';

describe('per-platform output files', () => {
  test('the platform goes before the extensions; a variant and a name without extension too', () => {
    const amd = { os: 'linux', architecture: 'amd64' };
    assert.equal(platformOutputPath('out/sbom.spdx.json', amd), 'out/sbom.linux-amd64.spdx.json');
    assert.equal(platformOutputPath('/a.b/prov.json', amd), '/a.b/prov.linux-amd64.json');
    assert.equal(
      platformOutputPath('sbom', { os: 'linux', architecture: 'arm', variant: 'v7' }),
      'sbom.linux-arm-v7',
    );
    assert.equal(platformOutputPath('.sbom', amd), '.sbom.linux-amd64');
  });
});
