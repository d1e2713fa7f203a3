/**
 * BuildKit's attestation layout built from assembled images: one image (the single-platform
 * index) and two (a multi-platform index), the images first, then one attestation manifest each.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assembleImage } from '../../../src/image/assemble.ts';
import { assembleIndex } from '../../../src/image/image-index.ts';
import type { BuiltImage, Index, Manifest } from '../../../src/image/types.ts';
import { attachAttestations, attachToIndex } from '../../../src/publish/attestation-index.ts';
import { sha256Digest } from '../../../src/image/digest.ts';

function image(architecture: string): BuiltImage {
  return assembleImage({
    config: { architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } },
    layers: [],
    format: 'oci',
  });
}
const st = (arch: string): { predicateType: string; bytes: Buffer } => ({
  predicateType: 'https://slsa.dev/provenance/v1',
  bytes: Buffer.from(`{"arch":"${arch}"}`),
});

describe('attestation index', () => {
  test('one image: the image, then its attestation manifest (subject, annotations, in-toto layer)', () => {
    const img = image('amd64');
    const a = attachAttestations(img, [st('amd64')]);
    const index = JSON.parse(a.indexBytes.toString()) as Index;
    assert.equal(a.indexDigest, sha256Digest(a.indexBytes));
    assert.deepEqual(
      index.manifests.map((m) => [m.digest, m.platform?.architecture]),
      [
        [img.digest, 'amd64'],
        [a.attestations[0]!.attestation.digest, 'unknown'],
      ],
    );
    const m = a.attestations[0]!.attestation.manifest as Manifest;
    assert.equal(m.subject?.digest, img.digest);
    assert.equal(m.layers[0]!.mediaType, 'application/vnd.in-toto+json');
    assert.equal(m.layers[0]!.annotations?.['in-toto.io/predicate-type'], 'https://slsa.dev/provenance/v1');
  });

  test('two platforms: both images, then one attestation manifest each naming its own image; index annotations kept', () => {
    const imgs = [image('amd64'), image('arm64')];
    const built = assembleIndex(imgs, 'oci');
    built.index.annotations = { 'org.opencontainers.image.title': 't' };
    const a = attachToIndex(
      built.index,
      imgs.map((i) => ({ image: i, statements: [st(i.config.architecture)] })),
    );
    const index = JSON.parse(a.indexBytes.toString()) as Index;
    assert.equal(index.annotations?.['org.opencontainers.image.title'], 't');
    assert.deepEqual(
      index.manifests.map((m) => [
        m.platform?.os,
        m.annotations?.['vnd.docker.reference.type'],
        m.annotations?.['vnd.docker.reference.digest'],
      ]),
      [
        ['linux', undefined, undefined],
        ['linux', undefined, undefined],
        ['unknown', 'attestation-manifest', imgs[0]!.digest],
        ['unknown', 'attestation-manifest', imgs[1]!.digest],
      ],
    );
    assert.deepEqual(
      a.attestations.map((x) => x.attestation.manifest.subject?.digest),
      imgs.map((i) => i.digest),
    );
    // An image without statements gets no attestation manifest.
    const one = attachToIndex(built.index, [
      { image: imgs[0]!, statements: [] },
      { image: imgs[1]!, statements: [st('arm64')] },
    ]);
    assert.equal(one.attestations.length, 1);
    assert.equal(one.attestations[0]!.subject.digest, imgs[1]!.digest);
  });
});
