/**
 * Builds a real two-layer image in a temp dir and checks the OCI layout and docker-archive
 * writers with the real umoci, skopeo and GNU tar.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { assembleImage } from '../../../src/image/assemble.ts';
import { sha256Digest } from '../../../src/image/digest.ts';
import { writeDockerArchive } from '../../../src/image/docker-archive.ts';
import { writeOciLayout } from '../../../src/image/oci-layout.ts';
import {
  MediaType,
  type BuiltImage,
  type ImageConfig,
  type Index,
  type LayerBlob,
} from '../../../src/image/types.ts';
import { KilnError } from '../../../src/util/errors.ts';

const run = promisify(execFile);

interface FileSpec {
  name: string;
  content?: string;
  mode?: number;
  dir?: boolean;
}

async function makeTar(files: FileSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const f of files) {
    const header = {
      name: f.name,
      mode: f.mode ?? (f.dir ? 0o755 : 0o644),
      mtime: new Date(1_700_000_000_000),
      uid: 0,
      gid: 0,
      type: f.dir ? ('directory' as const) : ('file' as const),
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (f.dir) pack.entry(header, cb);
      else pack.entry(header, f.content ?? '', cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function makeLayer(dir: string, files: FileSpec[]): Promise<LayerBlob> {
  const raw = await makeTar(files);
  const gz = gzipSync(raw);
  const digest = sha256Digest(gz);
  const path = join(dir, digest.slice(7));
  await writeFile(path, gz);
  return {
    descriptor: { mediaType: MediaType.OciLayerGzip, digest, size: gz.length },
    diffId: sha256Digest(raw),
    path,
  };
}

const config: ImageConfig = {
  architecture: 'amd64',
  os: 'linux',
  created: '2024-01-01T00:00:00Z',
  config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/greet'], WorkingDir: '/app' },
  rootfs: { type: 'layers', diff_ids: [] },
  history: [{ created_by: 'layer one' }, { created_by: 'layer two' }],
};

const fileReader = (l: LayerBlob): Promise<NodeJS.ReadableStream> =>
  Promise.resolve(createReadStream(l.path!));

let work: string;
let layers: LayerBlob[];
let oci: BuiltImage;
let docker: BuiltImage;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-image-out-'));
  layers = [
    await makeLayer(work, [
      { name: 'etc/', dir: true },
      { name: 'etc/hello.txt', content: 'hello from layer one\n' },
      { name: 'bin/', dir: true },
      { name: 'bin/greet', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
    ]),
    await makeLayer(work, [
      { name: 'app/', dir: true },
      { name: 'app/data.txt', content: 'layer two data\n' },
    ]),
  ];
  oci = assembleImage({ config, layers, format: 'oci' });
  docker = assembleImage({ config, layers, format: 'docker' });
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function skopeoInspect(ref: string, raw = false): Promise<Record<string, unknown>> {
  const { stdout } = await run('skopeo', ['inspect', ...(raw ? ['--raw'] : []), ref]);
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('writeOciLayout', () => {
  test('determinism: assembling the same inputs twice gives the same digest', () => {
    const again = assembleImage({ config, layers, format: 'oci' });
    assert.equal(again.digest, oci.digest);
    assert.ok(again.manifestBytes.equals(oci.manifestBytes));
  });

  test('writes a layout that umoci and skopeo read, and umoci unpacks', async () => {
    const dir = join(work, 'layout1');
    await writeOciLayout(dir, oci, { refName: 'v1', blobReader: fileReader });
    assert.equal(await readFile(join(dir, 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');
    const blobs = (await readdir(join(dir, 'blobs', 'sha256'))).sort();
    const want = [oci.digest, oci.manifest.config.digest, ...layers.map((l) => l.descriptor.digest)]
      .map((d) => d.slice(7))
      .sort();
    assert.deepEqual(blobs, want);

    const { stdout: ls } = await run('umoci', ['ls', '--layout', dir]);
    assert.deepEqual(ls.trim().split('\n'), ['v1']);

    const info = await skopeoInspect(`oci:${dir}:v1`);
    assert.equal(info.Digest, oci.digest);
    assert.deepEqual(
      info.Layers,
      layers.map((l) => l.descriptor.digest),
    );
    assert.deepEqual(info.Env, ['PATH=/usr/bin:/bin']);
    const raw = await skopeoInspect(`oci:${dir}:v1`, true);
    assert.equal(raw.mediaType, MediaType.OciManifest);

    const bundle = join(work, 'bundle1');
    await run('umoci', ['unpack', '--rootless', '--image', `${dir}:v1`, bundle]);
    assert.equal(
      await readFile(join(bundle, 'rootfs', 'etc', 'hello.txt'), 'utf8'),
      'hello from layer one\n',
    );
    assert.equal(await readFile(join(bundle, 'rootfs', 'app', 'data.txt'), 'utf8'), 'layer two data\n');
    const runtime = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { args: string[]; cwd: string };
    };
    assert.deepEqual(runtime.process.args, ['/bin/greet']);
    assert.equal(runtime.process.cwd, '/app');
  });

  test('adds to an existing layout, replaces an entry with the same ref name, skips existing blobs', async () => {
    const dir = join(work, 'layout2');
    await writeOciLayout(dir, oci, { refName: 'a', blobReader: fileReader });
    let reads = 0;
    const counting = (l: LayerBlob): Promise<NodeJS.ReadableStream> => {
      reads++;
      return fileReader(l);
    };
    await writeOciLayout(dir, docker, { refName: 'b', blobReader: counting });
    assert.equal(reads, 0, 'layer blobs already present must not be read again');
    const other = assembleImage({
      config: { ...config, created: '2030-01-01T00:00:00Z' },
      layers,
      format: 'oci',
    });
    await writeOciLayout(dir, other, { refName: 'a', blobReader: counting });

    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as Index;
    const byRef = Object.fromEntries(
      index.manifests.map((m) => [m.annotations?.['org.opencontainers.image.ref.name'], m]),
    );
    assert.equal(index.manifests.length, 2);
    assert.equal(byRef.a!.digest, other.digest);
    assert.equal(byRef.b!.digest, docker.digest);
    assert.equal(byRef.b!.mediaType, MediaType.DockerManifest);

    const { stdout: ls } = await run('umoci', ['ls', '--layout', dir]);
    assert.deepEqual(ls.trim().split('\n').sort(), ['a', 'b']);
    assert.equal((await skopeoInspect(`oci:${dir}:a`)).Digest, other.digest);
    // containers/image only resolves OCI-typed index entries by name, so check the Docker one by its blob
    const rawB = JSON.parse(await readFile(join(dir, 'blobs', 'sha256', docker.digest.slice(7)), 'utf8')) as {
      mediaType: string;
    };
    assert.equal(rawB.mediaType, MediaType.DockerManifest);
  });

  test('a corrupted blob fails with DIGEST_MISMATCH and leaves no partial blob', async () => {
    const dir = join(work, 'layout3');
    const corrupt = async (l: LayerBlob): Promise<NodeJS.ReadableStream> => {
      const data = await readFile(l.path!);
      if (l.descriptor.digest === layers[1]!.descriptor.digest) data[data.length - 5]! ^= 0xff;
      return Readable.from([data]);
    };
    await assert.rejects(
      writeOciLayout(dir, oci, { refName: 'bad', blobReader: corrupt }),
      (e: unknown) => e instanceof KilnError && e.category === 'fs' && e.code === 'BLOB_CORRUPT',
    );
    const blobs = await readdir(join(dir, 'blobs', 'sha256'));
    assert.deepEqual(blobs, [layers[0]!.descriptor.digest.slice(7)]);
    await assert.rejects(readFile(join(dir, 'index.json')), 'no index entry for a failed write');
  });
});

describe('writeDockerArchive', () => {
  test('writes a docker-archive that is also an OCI layout', async () => {
    const tarPath = join(work, 'image.tar');
    await writeDockerArchive(tarPath, docker, {
      repoTags: ['registry.example.com/team/app:1.0', 'registry.example.com/team/app:latest'],
      blobReader: fileReader,
    });

    const { stdout: list } = await run('tar', ['-tf', tarPath]);
    const names = list.trim().split('\n');
    const blob = (d: string): string => `blobs/sha256/${d.slice(7)}`;
    assert.deepEqual(
      [...names].sort(),
      [
        'blobs/',
        'blobs/sha256/',
        ...layers.map((l) => blob(l.descriptor.digest)),
        blob(docker.manifest.config.digest),
        blob(docker.digest),
        'index.json',
        'manifest.json',
        'oci-layout',
        'repositories',
      ].sort(),
    );
    const { stdout: mf } = await run('tar', ['-xOf', tarPath, 'manifest.json']);
    assert.deepEqual(JSON.parse(mf), [
      {
        Config: blob(docker.manifest.config.digest),
        RepoTags: ['registry.example.com/team/app:1.0', 'registry.example.com/team/app:latest'],
        Layers: layers.map((l) => blob(l.descriptor.digest)),
      },
    ]);
    const { stdout: repos } = await run('tar', ['-xOf', tarPath, 'repositories']);
    assert.deepEqual(JSON.parse(repos), {
      'registry.example.com/team/app': {
        '1.0': layers[1]!.descriptor.digest.slice(7),
        latest: layers[1]!.descriptor.digest.slice(7),
      },
    });
    // layers are stored as their compressed blobs, byte for byte
    const { stdout: layerBytes } = await run('tar', ['-xOf', tarPath, blob(layers[0]!.descriptor.digest)], {
      encoding: 'buffer',
    });
    assert.equal(sha256Digest(layerBytes), layers[0]!.descriptor.digest);

    const info = await skopeoInspect(`docker-archive:${tarPath}`);
    // skopeo describes docker-archive layers by their uncompressed digests
    assert.deepEqual(
      info.Layers,
      layers.map((l) => l.diffId),
    );
    assert.deepEqual(info.RepoTags, []);
    assert.deepEqual(info.Env, ['PATH=/usr/bin:/bin']);

    const dir2 = join(work, 'copied');
    await run('skopeo', ['--insecure-policy', 'copy', '-q', `docker-archive:${tarPath}`, `oci:${dir2}:x`]);
    const copied = await skopeoInspect(`oci:${dir2}:x`);
    assert.equal((copied.Layers as string[]).length, 2);
    const bundle = join(work, 'bundle2');
    await run('umoci', ['unpack', '--rootless', '--image', `${dir2}:x`, bundle]);
    assert.equal(await readFile(join(bundle, 'rootfs', 'app', 'data.txt'), 'utf8'), 'layer two data\n');
    assert.equal(
      await readFile(join(bundle, 'rootfs', 'etc', 'hello.txt'), 'utf8'),
      'hello from layer one\n',
    );
  });

  test('is byte-for-byte deterministic and readable as an oci-archive', async () => {
    const a = join(work, 'det-a.tar');
    const b = join(work, 'det-b.tar');
    await writeDockerArchive(a, oci, { repoTags: ['r/x:1'], blobReader: fileReader });
    await writeDockerArchive(b, oci, { repoTags: ['r/x:1'], blobReader: fileReader });
    assert.ok((await readFile(a)).equals(await readFile(b)));
    // the same file read as an OCI archive gives back the exact manifest
    const asOci = await skopeoInspect(`oci-archive:${a}:1`);
    assert.equal(asOci.Digest, oci.digest);
    const { stdout: ls } = await run('tar', ['-tf', a]);
    assert.ok(ls.split('\n').includes('oci-layout'));
  });

  const badReaders: Array<[string, (l: LayerBlob) => Promise<NodeJS.ReadableStream>]> = [
    [
      'flipped byte',
      async (l) => {
        const d = await readFile(l.path!);
        d[10]! ^= 1;
        return Readable.from([d]);
      },
    ],
    ['truncated', async (l) => Readable.from([(await readFile(l.path!)).subarray(0, 20)])],
    ['too long', async (l) => Readable.from([await readFile(l.path!), Buffer.from('extra')])],
  ];
  for (const [name, reader] of badReaders) {
    test(`a ${name} layer fails with BLOB_CORRUPT and leaves no tarball`, async () => {
      const dir = await mkdtemp(join(work, 'bad-'));
      const tarPath = join(dir, 'out.tar');
      await assert.rejects(
        writeDockerArchive(tarPath, oci, { repoTags: ['r/x:1'], blobReader: reader }),
        (e: unknown) => e instanceof KilnError && e.code === 'BLOB_CORRUPT',
      );
      assert.deepEqual(await readdir(dir), []);
    });
  }

  test('an unwritable destination is an fs KilnError', async () => {
    await assert.rejects(
      writeDockerArchive(join(work, 'no', 'such', 'dir', 'x.tar'), oci, {
        repoTags: [],
        blobReader: fileReader,
      }),
      (e: unknown) => e instanceof KilnError && e.category === 'fs' && e.code === 'TAR_WRITE',
    );
  });
});
