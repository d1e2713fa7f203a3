/** metadata-action's annotation prefixes: where each lands in the assembled image and the OCI layout. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { placeAnnotations } from '../../../src/image/annotations.ts';
import { assembleImage } from '../../../src/image/assemble.ts';
import { writeOciLayout } from '../../../src/image/oci-layout.ts';
import type { ImageConfig } from '../../../src/image/types.ts';

const arm64 = { os: 'linux', architecture: 'arm64' };

test('prefixes are stripped and sorted by where they go', () => {
  const p = placeAnnotations(
    {
      plain: '1',
      'manifest:org.opencontainers.image.title': 't',
      'index:org.opencontainers.image.description': 'd',
      'manifest-descriptor:x': 'y',
      'index-descriptor:z': 'w',
      'manifest[linux/arm64]:only.arm': 'a',
      'manifest[linux/amd64]:only.amd': 'b',
      'not-a-type:k': 'kept as written',
    },
    arm64,
  );
  assert.deepEqual(p.manifest, {
    plain: '1',
    'org.opencontainers.image.title': 't',
    'only.arm': 'a',
    'not-a-type:k': 'kept as written',
  });
  assert.deepEqual(p.index, { 'org.opencontainers.image.description': 'd' });
  assert.deepEqual(p.manifestDescriptor, { x: 'y' });
  assert.deepEqual(p.indexDescriptor, { z: 'w' });
  assert.deepEqual(p.otherPlatforms, ['manifest[linux/amd64]:only.amd']);
});

test('the manifest carries the key without its prefix; the layout gets descriptor and index ones', async () => {
  const config = { ...arm64, config: {}, rootfs: { type: 'layers', diff_ids: [] } } as unknown as ImageConfig;
  const image = assembleImage({
    config,
    layers: [],
    format: 'oci',
    annotations: { 'manifest:k': 'v', 'manifest-descriptor:d': '1', 'index:i': '2' },
  });
  assert.deepEqual(image.manifest.annotations, { k: 'v' });
  const dir = mkdtempSync(join(tmpdir(), 'kiln-annot-'));
  try {
    await writeOciLayout(dir, image, {
      refName: 'latest',
      blobReader: () => {
        throw new Error('no layers');
      },
    });
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
      annotations?: Record<string, string>;
      manifests: Array<{ annotations?: Record<string, string> }>;
    };
    assert.deepEqual(index.annotations, { i: '2' });
    assert.deepEqual(index.manifests[0]!.annotations, {
      d: '1',
      'org.opencontainers.image.ref.name': 'latest',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const docker = assembleImage({ config, layers: [], format: 'docker', annotations: { 'manifest:k': 'v' } });
  assert.equal(docker.manifest.annotations, undefined);
});
