/**
 * `kiln warm` (Kaniko's warmer) through the real CLI: it pulls a base image into
 * `<cache-dir>/base/`; a build with that --cache-dir takes the base layers from there (no layer GET
 * on the wire) and still works with the registry stopped (--no-push --tar-path), while an image that
 * was not warmed fails as before.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kiln, type CliResult } from '../helpers/cli.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import type { FaultProxy } from '../helpers/fault-proxy.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;

let work: string;
let reg: TestRegistry | undefined;
let proxy: FaultProxy | undefined;
let baseDigest = '';
let baseLayer = '';
let n = 0;

before(async () => {
  if (!isRoot) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-warm-'));
  await chmod(work, 0o755);
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.host);
  baseDigest = await pushBusyboxImage(reg, 'base/busybox', '1');
  await pushBusyboxImage(reg, 'base/other', '1');
  const r = await fetch(`${reg.url}/v2/base/busybox/manifests/1`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  baseLayer = ((await r.json()) as { layers: { digest: string }[] }).layers[0]!.digest;
});

after(async () => {
  await proxy?.stop();
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function context(image: string): Promise<string> {
  n++;
  const ctx = join(work, `ctx-${n}`);
  await mkdir(ctx, { recursive: true });
  await writeFile(
    join(ctx, 'Dockerfile'),
    `FROM ${image}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy\n`,
  );
  await writeFile(join(ctx, 'hello.txt'), 'hello\n');
  return ctx;
}

/** A --no-push build into a docker tarball; returns the CLI result and the tar path. */
async function buildToTar(
  ctx: string,
  cacheDir: string,
  host: string,
): Promise<{ r: CliResult; tar: string }> {
  n++;
  const tar = join(work, `image-${n}.tar`);
  const r = await kiln([
    'build',
    '-c',
    ctx,
    '-d',
    `${host}/app/warm:${n}`,
    '--no-push',
    '--tar-path',
    tar,
    '--insecure-registry',
    host,
    '--isolation',
    'chroot',
    '--work-dir',
    join(work, `w-${n}`),
    '--cache-dir',
    cacheDir,
    '--image-download-retry',
    '0',
  ]);
  return { r, tar };
}

describe('kiln warm', { skip: !isRoot && 'needs root (chroot rung)' }, () => {
  const cacheDir = (): string => join(work, 'cache');

  test('pulls manifest, config and layers into <cache-dir>/base', { timeout: 60_000 }, async () => {
    const image = `${proxy!.host}/base/busybox:1`;
    const r = await kiln([
      'warm',
      '--image',
      image,
      '--cache-dir',
      cacheDir(),
      '--insecure-registry',
      proxy!.host,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${image} ${baseDigest}`);
    const blob = join(cacheDir(), 'base', 'blobs', baseLayer.replace(/^sha256:/, ''));
    assert.ok((await stat(blob)).size > 0, 'the layer blob is cached');
    assert.equal((await readdir(join(cacheDir(), 'base', 'manifests'))).length, 1);
    // Warming again downloads nothing.
    proxy!.log.length = 0;
    const again = await kiln([
      'warm',
      '--image',
      image,
      '--cache-dir',
      cacheDir(),
      '--insecure-registry',
      proxy!.host,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /is cached/);
    assert.deepEqual(
      proxy!.log.filter((e) => e.method === 'GET' && e.path.includes(`/blobs/${baseLayer}`)),
      [],
    );
  });

  test('warm without --image is a usage error', { timeout: 30_000 }, async () => {
    const r = await kiln(['warm', '--cache-dir', cacheDir()]);
    assert.equal(r.code, 2, r.stderr);
  });

  test(
    'a build with the cache dir takes the base layer from the warm cache',
    { timeout: 120_000 },
    async () => {
      const ctx = await context(`${proxy!.host}/base/busybox:1`);
      proxy!.log.length = 0;
      const { r, tar } = await buildToTar(ctx, cacheDir(), proxy!.host);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(proxy!.log.length > 0, 'the manifest was still asked for');
      assert.deepEqual(
        proxy!.log.filter((e) => e.method === 'GET' && e.path.includes(`/blobs/${baseLayer}`)),
        [],
        'no base layer download',
      );
      assert.ok((await stat(tar)).size > 0);
    },
  );

  test(
    'with the registry stopped a warmed base still builds; an unwarmed one fails',
    { timeout: 180_000 },
    async () => {
      const warmed = await context(`${proxy!.host}/base/busybox:1`);
      const cold = await context(`${proxy!.host}/base/other:1`);
      await reg!.stop();
      const { r, tar } = await buildToTar(warmed, cacheDir(), proxy!.host);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /using the warmed manifest/);
      assert.equal(r.stdout.trim().length, 71);
      // The tarball holds the base layer, the two new layers and a manifest naming them.
      const { stdout } = await execFileP('tar', ['-tf', tar]);
      const manifest = JSON.parse(
        (await execFileP('tar', ['-xOf', tar, 'manifest.json'], { maxBuffer: 1 << 20 })).stdout,
      ) as Array<{ Layers: string[] }>;
      assert.equal(manifest[0]!.Layers.length, 3, stdout);
      const failed = await buildToTar(cold, cacheDir(), proxy!.host);
      assert.notEqual(failed.r.code, 0);
      assert.match(failed.r.stderr, /error: /);
    },
  );
});
