/** The action's job summary and metadata output for a build of several platforms. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { digestMediaType, imageTable, metadata } from '../../../src/ci/github/summary.ts';
import type { BuildResult } from '../../../src/result.ts';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const one = {
  digest: d('a'),
  imageId: d('b'),
  destinations: ['r/x:1'],
  pushed: true,
  size: 10,
  layers: 1,
  isolation: { rung: 'chroot', reason: 'root' },
  steps: [],
  durationMs: 5,
} as BuildResult;
const multi: BuildResult = {
  ...one,
  platforms: [
    { platform: 'linux/amd64', digest: d('c') },
    { platform: 'linux/arm64', digest: d('e') },
  ],
};

test('the summary names the index and lists each platform with its image digest', () => {
  const rows = imageTable(multi).map((r) => r.map((c) => (typeof c === 'string' ? c : c.data)));
  assert.deepEqual(
    rows.find((r) => r[0] === 'Digest'),
    ['Digest', `<code>${d('a')}</code> (image index)`],
  );
  assert.deepEqual(
    rows.find((r) => r[0] === 'Platforms'),
    ['Platforms', `linux/amd64: <code>${d('c')}</code><br>linux/arm64: <code>${d('e')}</code>`],
  );
  assert.equal(
    imageTable(one).find((r) => r[0] === 'Platforms'),
    undefined,
  );
});

test('metadata: the descriptor is the index, kiln.platforms each image; one platform stays a manifest', () => {
  const m = metadata(multi, { format: 'oci', buildRef: 'r' });
  assert.deepEqual(m['containerimage.descriptor'], {
    mediaType: 'application/vnd.oci.image.index.v1+json',
    digest: d('a'),
  });
  assert.deepEqual(m['kiln.platforms'], multi.platforms);
  assert.equal(digestMediaType(multi, 'docker'), 'application/vnd.docker.distribution.manifest.list.v2+json');
  assert.equal(digestMediaType(one, 'oci'), 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(metadata(one, { format: 'oci', buildRef: 'r' })['kiln.platforms'], undefined);
});
