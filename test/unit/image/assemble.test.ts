import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assembleImage, convertManifest } from '../../../src/image/assemble.ts';
import { writeDigestFiles } from '../../../src/image/digest-files.ts';
import { sha256Digest } from '../../../src/image/digest.ts';
import { MediaType, type ImageConfig, type LayerBlob } from '../../../src/image/types.ts';
import { KilnError } from '../../../src/util/errors.ts';

function layer(name: string, mediaType: string): LayerBlob {
  return {
    descriptor: { mediaType, digest: sha256Digest(`blob-${name}`), size: 10 + name.length },
    diffId: sha256Digest(`diff-${name}`),
  };
}

const baseConfig = (): ImageConfig => ({
  architecture: 'amd64',
  os: 'linux',
  created: '2024-01-01T00:00:00Z',
  config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
  rootfs: { type: 'layers', diff_ids: [] },
  history: [{ created_by: 'a' }, { created_by: 'b' }],
});

describe('assembleImage', () => {
  test('fills diff_ids, serialises canonical JSON and digests the exact bytes', () => {
    const layers = [layer('a', MediaType.OciLayerGzip), layer('b', MediaType.OciLayerGzip)];
    const img = assembleImage({ config: baseConfig(), layers, format: 'oci' });
    assert.deepEqual(img.config.rootfs.diff_ids, [layers[0]!.diffId, layers[1]!.diffId]);
    const parsedConfig = JSON.parse(img.configBytes.toString()) as ImageConfig;
    assert.deepEqual(parsedConfig.rootfs.diff_ids, img.config.rootfs.diff_ids);
    assert.equal(img.manifest.config.digest, sha256Digest(img.configBytes));
    assert.equal(img.manifest.config.size, img.configBytes.length);
    assert.equal(img.digest, sha256Digest(img.manifestBytes));
    assert.deepEqual(JSON.parse(img.manifestBytes.toString()), img.manifest);
    // canonical: no white space, sorted keys
    assert.ok(!img.manifestBytes.toString().includes(' '));
    assert.ok(img.configBytes.toString().startsWith('{"architecture":"amd64","config":'));
  });

  test('is deterministic and independent of key order in the input', () => {
    const layers = [layer('a', MediaType.OciLayerGzip)];
    const c2 = baseConfig();
    const reordered = Object.fromEntries(Object.entries(c2).reverse()) as unknown as ImageConfig;
    assert.notEqual(Object.keys(reordered)[0], Object.keys(c2)[0]);
    const a = assembleImage({ config: baseConfig(), layers, format: 'oci' });
    const b = assembleImage({ config: reordered, layers, format: 'oci' });
    assert.equal(a.digest, b.digest);
    assert.ok(a.manifestBytes.equals(b.manifestBytes));
    const c = assembleImage({
      config: { ...baseConfig(), created: '2025-01-01T00:00:00Z' },
      layers,
      format: 'oci',
    });
    assert.notEqual(a.digest, c.digest);
  });

  const mediaCases: Array<{
    format: 'oci' | 'docker';
    input: string;
    want: string;
    manifest: string;
    config: string;
  }> = [
    {
      format: 'oci',
      input: MediaType.OciLayerGzip,
      want: MediaType.OciLayerGzip,
      manifest: MediaType.OciManifest,
      config: MediaType.OciConfig,
    },
    {
      format: 'oci',
      input: MediaType.OciLayerZstd,
      want: MediaType.OciLayerZstd,
      manifest: MediaType.OciManifest,
      config: MediaType.OciConfig,
    },
    {
      format: 'oci',
      input: MediaType.OciLayer,
      want: MediaType.OciLayer,
      manifest: MediaType.OciManifest,
      config: MediaType.OciConfig,
    },
    {
      format: 'oci',
      input: MediaType.DockerLayerGzip,
      want: MediaType.OciLayerGzip,
      manifest: MediaType.OciManifest,
      config: MediaType.OciConfig,
    },
    {
      format: 'docker',
      input: MediaType.OciLayerGzip,
      want: MediaType.DockerLayerGzip,
      manifest: MediaType.DockerManifest,
      config: MediaType.DockerConfig,
    },
    {
      format: 'docker',
      input: MediaType.DockerLayerGzip,
      want: MediaType.DockerLayerGzip,
      manifest: MediaType.DockerManifest,
      config: MediaType.DockerConfig,
    },
  ];
  for (const c of mediaCases) {
    test(`${c.format} format: layer ${c.input.split('.').pop()} → ${c.want}`, () => {
      const img = assembleImage({ config: baseConfig(), layers: [layer('x', c.input)], format: c.format });
      assert.equal(img.manifest.mediaType, c.manifest);
      assert.equal(img.manifest.config.mediaType, c.config);
      assert.equal(img.manifest.layers[0]!.mediaType, c.want);
      assert.equal(img.layers[0]!.descriptor.mediaType, c.want);
    });
  }

  for (const mt of [MediaType.OciLayer, MediaType.OciLayerZstd]) {
    test(`docker format rejects ${mt}`, () => {
      assert.throws(
        () => assembleImage({ config: baseConfig(), layers: [layer('x', mt)], format: 'docker' }),
        (e: unknown) => e instanceof KilnError && e.category === 'usage' && e.code === 'FORMAT_UNSUPPORTED',
      );
    });
  }

  test('same inputs give different digests per format; annotations only in OCI', () => {
    const layers = [layer('a', MediaType.OciLayerGzip)];
    const annotations = { 'org.opencontainers.image.source': 'https://example.com/x' };
    const o = assembleImage({ config: baseConfig(), layers, format: 'oci', annotations });
    const d = assembleImage({ config: baseConfig(), layers, format: 'docker', annotations });
    assert.notEqual(o.digest, d.digest);
    assert.ok(o.configBytes.equals(d.configBytes));
    assert.deepEqual(o.manifest.annotations, annotations);
    assert.equal(d.manifest.annotations, undefined);
  });

  test('convertManifest round-trips between formats', () => {
    const o = assembleImage({
      config: baseConfig(),
      layers: [layer('a', MediaType.OciLayerGzip), layer('b', MediaType.OciLayerGzip)],
      format: 'oci',
    });
    const d = convertManifest(o.manifest, 'docker');
    assert.equal(d.mediaType, MediaType.DockerManifest);
    assert.equal(d.config.mediaType, MediaType.DockerConfig);
    assert.equal(d.config.digest, o.manifest.config.digest);
    assert.deepEqual(
      d.layers.map((l) => l.mediaType),
      [MediaType.DockerLayerGzip, MediaType.DockerLayerGzip],
    );
    assert.deepEqual(convertManifest(d, 'oci'), o.manifest);
    const zstd = { ...o.manifest, layers: [{ ...o.manifest.layers[0]!, mediaType: MediaType.OciLayerZstd }] };
    assert.throws(() => convertManifest(zstd, 'docker'), /FORMAT_UNSUPPORTED|Docker v2/);
  });
});

describe('writeDigestFiles (Kaniko formats)', () => {
  const digest = sha256Digest('manifest');
  const cases: Array<{ destinations: string[]; nameDigest: string; nameTagDigest: string }> = [
    {
      destinations: ['reg.example.com/team/app:1.0'],
      nameDigest: `reg.example.com/team/app@${digest}\n`,
      nameTagDigest: `reg.example.com/team/app:1.0@${digest}\n`,
    },
    {
      destinations: ['127.0.0.1:5000/app:v1', 'index.docker.io/library/app:latest'],
      nameDigest: `127.0.0.1:5000/app@${digest}\nindex.docker.io/library/app@${digest}\n`,
      nameTagDigest: `127.0.0.1:5000/app:v1@${digest}\nindex.docker.io/library/app:latest@${digest}\n`,
    },
    {
      destinations: ['localhost:5000/app'],
      nameDigest: `localhost:5000/app@${digest}\n`,
      nameTagDigest: `localhost:5000/app:latest@${digest}\n`,
    },
    { destinations: [], nameDigest: '', nameTagDigest: '' },
  ];
  for (const c of cases) {
    test(`destinations ${JSON.stringify(c.destinations)}`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'kiln-digestfiles-'));
      try {
        const opts = {
          digest,
          destinations: c.destinations,
          digestFile: join(dir, 'digest'),
          imageNameWithDigestFile: join(dir, 'sub', 'name-digest'),
          imageNameTagWithDigestFile: join(dir, 'name-tag-digest'),
        };
        await writeDigestFiles(opts);
        assert.equal(await readFile(opts.digestFile, 'utf8'), digest);
        assert.equal(await readFile(opts.imageNameWithDigestFile, 'utf8'), c.nameDigest);
        assert.equal(await readFile(opts.imageNameTagWithDigestFile, 'utf8'), c.nameTagDigest);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  test('writes only the files asked for, rejects a bad digest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-digestfiles-'));
    try {
      await writeDigestFiles({ digest, destinations: ['r/a:b'], digestFile: join(dir, 'd') });
      await assert.rejects(readFile(join(dir, 'name-digest')));
      await assert.rejects(
        writeDigestFiles({ digest: 'sha256:nope', destinations: [], digestFile: join(dir, 'd') }),
        (e: unknown) => e instanceof KilnError && e.code === 'BAD_DIGEST',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
