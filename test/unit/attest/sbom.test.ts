/**
 * The SBOM from real layer tars (tar-stream packed, gzip and plain): whiteouts and opaque
 * directories of later layers hide earlier metadata; SPDX checked against the 2.3 spec's required
 * fields, CycloneDX against the library's own JSON schema validator.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import * as CDX from '@cyclonedx/cyclonedx-library';
import { inventory, scanLayers, type ScanLayer } from '../../../src/attest/layer-scan.ts';
import { toSpdx, type SpdxDocument } from '../../../src/attest/spdx.ts';
import { toCycloneDx, CYCLONEDX_SPEC } from '../../../src/attest/cyclonedx.ts';
import { MediaType } from '../../../src/image/types.ts';

type Entry = { name: string; body?: string; type?: 'file' | 'directory' | 'link'; linkname?: string };

async function layerTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory' });
    else if (e.type === 'link') pack.entry({ name: e.name, type: 'link', linkname: e.linkname! });
    else pack.entry({ name: e.name }, e.body ?? '');
  }
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

function layer(bytes: Buffer, gzip: boolean): ScanLayer {
  const data = gzip ? gzipSync(bytes) : bytes;
  return {
    mediaType: gzip ? MediaType.OciLayerGzip : MediaType.OciLayer,
    open: async () => Readable.from([data]),
  };
}

const dpkg = (pkgs: Array<[string, string]>): string =>
  pkgs
    .map(([n, v]) => `Package: ${n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${v}\n`)
    .join('\n');

const TARGET = {
  name: '127.0.0.1:5000/app:1',
  digest: `sha256:${'a'.repeat(64)}`,
  created: '2024-01-01T00:00:00.000Z',
};

async function sampleInventory(): Promise<ReturnType<typeof inventory>> {
  const base = await layerTar([
    { name: 'etc/os-release', body: 'ID=debian\nVERSION_ID="12"\n' },
    {
      name: 'var/lib/dpkg/status',
      body: dpkg([
        ['bash', '5.2'],
        ['coreutils', '9.1'],
      ]),
    },
    {
      name: 'usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA',
      body: 'Name: six\nVersion: 1.16.0\n',
    },
    { name: 'old/node_modules/gone/package.json', body: '{"name":"gone","version":"1.0.0"}' },
    { name: 'opq/node_modules/hidden/package.json', body: '{"name":"hidden","version":"1.0.0"}' },
  ]);
  const apt = await layerTar([
    // apt rewrites the status file: the later copy wins.
    {
      name: './var/lib/dpkg/status',
      body: dpkg([
        ['bash', '5.2'],
        ['coreutils', '9.1'],
        ['curl', '7.88.1-10'],
      ]),
    },
    { name: 'old/.wh.node_modules' },
    { name: 'opq/', type: 'directory' },
    { name: 'opq/.wh..wh..opq' },
    { name: 'opq/node_modules/kept/package.json', body: '{"name":"kept","version":"2.0.0","license":"MIT"}' },
  ]);
  const app = await layerTar([
    {
      name: 'app/package-lock.json',
      body: JSON.stringify({
        lockfileVersion: 3,
        packages: {
          '': { name: 'app' },
          'node_modules/left-pad': { version: '1.3.0' },
          'node_modules/kept': { version: '2.0.0' },
        },
      }),
    },
    {
      name: 'app/node_modules/left-pad/package.json',
      body: '{"name":"left-pad","version":"1.3.0","license":"WTFPL"}',
    },
    {
      name: 'app2/node_modules/left-pad/package.json',
      type: 'link',
      linkname: 'app/node_modules/left-pad/package.json',
    },
  ]);
  const files = await scanLayers([layer(base, true), layer(apt, false), layer(app, true)]);
  return inventory(files);
}

describe('layer scan', () => {
  test('final filesystem view: later files win, whiteouts and opaque dirs hide, links followed', async () => {
    const inv = await sampleInventory();
    assert.deepEqual(inv.distro, { id: 'debian', versionId: '12' });
    assert.deepEqual(
      inv.packages.map((p) => `${p.type}:${p.name}@${p.version}`),
      [
        'deb:bash@5.2',
        'deb:coreutils@9.1',
        'deb:curl@7.88.1-10',
        'npm:kept@2.0.0',
        'npm:left-pad@1.3.0',
        'pypi:six@1.16.0',
      ],
    );
    // The lockfile and the installed package.json are one package; the license comes from package.json.
    assert.equal(inv.packages.find((p) => p.name === 'left-pad')!.license, 'WTFPL');
  });
  test('a corrupt layer is an fs error, not a crash', async () => {
    const bad: ScanLayer = {
      mediaType: MediaType.OciLayerGzip,
      open: async () => Readable.from([Buffer.from('not gzip')]),
    };
    await assert.rejects(scanLayers([bad]), (e: Error & { code?: string }) => e.code === 'SBOM_SCAN_FAILED');
  });
});

/** SPDX 2.3 required fields, from the spec's clauses 6 (document creation) and 7 (package). */
function checkSpdx23(doc: SpdxDocument): void {
  assert.equal(doc.spdxVersion, 'SPDX-2.3'); // 6.1
  assert.equal(doc.dataLicense, 'CC0-1.0'); // 6.2
  assert.equal(doc.SPDXID, 'SPDXRef-DOCUMENT'); // 6.3
  assert.ok(doc.name.length > 0); // 6.4
  assert.doesNotThrow(() => new URL(doc.documentNamespace)); // 6.5: a URI
  assert.ok(!doc.documentNamespace.includes('#'), 'namespace has no #');
  assert.ok(doc.creationInfo.creators.length > 0); // 6.8
  assert.ok(doc.creationInfo.creators.every((c) => /^(Tool|Organization|Person): .+/.test(c)));
  assert.match(doc.creationInfo.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/); // 6.9: YYYY-MM-DDThh:mm:ssZ
  const ids = new Set<string>();
  for (const p of doc.packages) {
    assert.ok(p.name.length > 0); // 7.1
    assert.match(p.SPDXID, /^SPDXRef-[A-Za-z0-9.-]+$/); // 7.2
    assert.ok(!ids.has(p.SPDXID), `unique ${p.SPDXID}`);
    ids.add(p.SPDXID);
    assert.ok(
      p.downloadLocation === 'NOASSERTION' || p.downloadLocation === 'NONE' || /:/.test(p.downloadLocation),
    ); // 7.7
    // 7.8: filesAnalyzed true would require packageVerificationCode (7.9).
    assert.equal(p.filesAnalyzed, false);
    for (const r of p.externalRefs ?? []) {
      assert.ok(['SECURITY', 'PACKAGE-MANAGER', 'PERSISTENT-ID', 'OTHER'].includes(r.referenceCategory)); // 7.21
      if (r.referenceType === 'purl') assert.match(r.referenceLocator, /^pkg:[a-z]+\/.+@.+/);
    }
  }
  for (const r of doc.relationships) {
    assert.ok(r.spdxElementId === 'SPDXRef-DOCUMENT' || ids.has(r.spdxElementId)); // 11.1
    assert.ok(ids.has(r.relatedSpdxElement));
  }
  assert.ok(
    doc.relationships.some(
      (r) => r.spdxElementId === 'SPDXRef-DOCUMENT' && r.relationshipType === 'DESCRIBES',
    ),
  );
}

describe('SBOM documents', () => {
  test('SPDX 2.3: required fields, one package per finding plus the image, CONTAINS relationships', async () => {
    const inv = await sampleInventory();
    const doc = toSpdx(inv, TARGET);
    const wire = JSON.parse(JSON.stringify(doc)) as SpdxDocument;
    checkSpdx23(wire);
    assert.equal(doc.packages.length, inv.packages.length + 1);
    assert.equal(
      doc.relationships.filter((r) => r.relationshipType === 'CONTAINS').length,
      inv.packages.length,
    );
    const curl = doc.packages.find((p) => p.name === 'curl')!;
    assert.equal(curl.versionInfo, '7.88.1-10');
    assert.equal(
      curl.externalRefs![0]!.referenceLocator,
      'pkg:deb/debian/curl@7.88.1-10?arch=amd64&distro=debian-12',
    );
    assert.equal(doc.packages.find((p) => p.name === 'left-pad')!.licenseDeclared, 'WTFPL');
    // Deterministic: same input, same bytes.
    assert.equal(JSON.stringify(toSpdx(inv, TARGET)), JSON.stringify(doc));
  });
  test('CycloneDX 1.6 passes the library validator and lists every package by purl', async () => {
    const inv = await sampleInventory();
    const json = toCycloneDx(inv, TARGET);
    const errors = await new CDX.Validation.JsonStrictValidator(CYCLONEDX_SPEC.version).validate(json);
    assert.equal(errors, null, JSON.stringify(errors));
    const bom = JSON.parse(json) as {
      specVersion: string;
      components: Array<{ purl: string; name: string }>;
    };
    assert.equal(bom.specVersion, '1.6');
    assert.equal(bom.components.length, inv.packages.length);
    assert.ok(bom.components.some((c) => c.purl === 'pkg:npm/left-pad@1.3.0'));
    assert.equal(toCycloneDx(inv, TARGET), json);
  });
});
