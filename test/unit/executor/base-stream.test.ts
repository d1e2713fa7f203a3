/**
 * A base's first layer extracted while it downloads (base.ts, StreamedLayer): the real extractor on
 * a real gzip tar fed in pieces. The tree grows before the download has finished; the result is the
 * layer's tree exactly; a stream that breaks (a download retried from its first byte) is replaced by
 * the verified file, leaving nothing of the broken attempt; a failed download fails with its own
 * error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { materializeBase, type BaseImageSource, type ResolvedBase } from '../../../src/executor/base.ts';
import type { ExecutorDeps } from '../../../src/executor/deps.ts';
import { extractLayer } from '../../../src/fs/extract.ts';
import type { LayerBlob } from '../../../src/image/types.ts';
import { KilnError } from '../../../src/util/errors.ts';

const FILES = 120;

async function layerBlob(dir: string): Promise<{ blob: string; bytes: Buffer }> {
  const src = join(dir, 'src');
  await mkdir(join(src, 'data'), { recursive: true });
  // Random bytes do not compress: the blob is about FILES x 16 KiB, many stream chunks.
  for (let i = 0; i < FILES; i++) await writeFile(join(src, 'data', `f${i}`), randomBytes(16 << 10));
  const blob = join(dir, 'layer.tar.gz');
  execFileSync('tar', ['-czf', blob, '-C', src, '--owner=0', '--group=0', 'data']);
  return { blob, bytes: readFileSync(blob) };
}

function base(size: number): ResolvedBase {
  const layer: LayerBlob = {
    descriptor: {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: `sha256:${'0'.repeat(64)}`,
      size,
    },
    diffId: `sha256:${'1'.repeat(64)}`,
  };
  return {
    pinned: `example/base@sha256:${'2'.repeat(64)}`,
    digest: `sha256:${'2'.repeat(64)}`,
    config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.diffId] } },
    layers: [layer],
  };
}

/** Only what materializeBase uses: the real extractor, from the stream when there is one. */
function deps(): ExecutorDeps {
  const extract: ExecutorDeps['extractLayer'] = async (path, root, o) => {
    await extractLayer(o.stream ?? createReadStream(path), root, {});
  };
  return { extractLayer: extract } as Pick<ExecutorDeps, 'extractLayer'> as ExecutorDeps;
}

function source(stream: PassThrough, path: Promise<string>): BaseImageSource {
  return {
    resolve: () => Promise.reject(new Error('not used')),
    fetchLayer: () => path,
    streamLayer: () => ({ stream, path }),
  };
}

async function filesIn(dir: string): Promise<number> {
  return (await readdir(dir).catch(() => [])).length;
}

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('the first layer extracts while it downloads, and the tree is the layer exactly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-base-stream-'));
  const stream = new PassThrough();
  try {
    const { blob, bytes } = await layerBlob(dir);
    let downloaded!: (p: string) => void;
    const path = new Promise<string>((r) => (downloaded = r));
    const rootfs = join(dir, 'rootfs');
    const done = materializeBase(base(bytes.length), source(stream, path), rootfs, deps());
    // Three quarters of the bytes: files appear although the download has not finished.
    const cut = Math.floor(bytes.length * 0.75);
    stream.write(bytes.subarray(0, cut));
    await until(async () => (await filesIn(join(rootfs, 'data'))) > 0, 'files before the download ended');
    assert.ok((await filesIn(join(rootfs, 'data'))) < FILES, 'not every file yet');
    stream.end(bytes.subarray(cut));
    downloaded(blob);
    const layers = await done;
    assert.equal(layers[0]!.path, blob);
    assert.equal(await filesIn(join(rootfs, 'data')), FILES);
    const want = readFileSync(join(dir, 'src', 'data', 'f7'));
    assert.deepEqual(readFileSync(join(rootfs, 'data', 'f7')), want);
  } finally {
    stream.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a stream that breaks gives way to the verified file; nothing of the broken attempt stays', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-base-stream-'));
  let stream: PassThrough | undefined;
  try {
    const { blob, bytes } = await layerBlob(dir);
    // The broken attempt's bytes are another tar: its file must not survive. Big enough to be
    // written as it arrives (small files are made in batches, seen only later).
    const other = join(dir, 'other');
    await mkdir(other);
    await writeFile(join(other, 'stray'), randomBytes(4 << 20));
    const otherBlob = join(dir, 'other.tar.gz');
    execFileSync('tar', ['-czf', otherBlob, '-C', other, 'stray']);
    stream = new PassThrough();
    let downloaded!: (p: string) => void;
    const path = new Promise<string>((r) => (downloaded = r));
    const rootfs = join(dir, 'rootfs');
    const done = materializeBase(base(bytes.length), source(stream, path), rootfs, deps());
    const broken = readFileSync(otherBlob);
    stream.write(broken.subarray(0, broken.length >> 1));
    await until(async () => existsSync(join(rootfs, 'stray')), 'the broken attempt to reach the tree');
    stream.destroy(new Error('download restarted'));
    downloaded(blob);
    await done;
    assert.equal(existsSync(join(rootfs, 'stray')), false);
    assert.equal(await filesIn(join(rootfs, 'data')), FILES);
  } finally {
    // A failed wait must not leave the extraction waiting for bytes (and the test process alive).
    stream?.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a download that fails fails the base with its own error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-base-stream-'));
  try {
    const { bytes } = await layerBlob(dir);
    const stream = new PassThrough();
    const failure = new KilnError('registry', 'BLOB_FETCH_FAILED', 'downloading blob failed 3 times');
    const path = Promise.reject(failure);
    path.catch(() => undefined);
    stream.write(bytes.subarray(0, 1000));
    setTimeout(() => stream.destroy(failure), 20);
    await assert.rejects(
      materializeBase(base(bytes.length), source(stream, path), join(dir, 'rootfs'), deps()),
      (e: unknown) => e instanceof KilnError && e.code === 'BLOB_FETCH_FAILED',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
