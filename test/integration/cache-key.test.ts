/**
 * Cache keys through the real CLI: `ADD --unpack=false t.tar /d/` and then `ADD t.tar /d/` with the
 * same --cache-dir are two different steps. Keyed on the display text, the second build reused the
 * first one's layer (d/t.tar instead of the unpacked d/x.txt).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kiln } from '../helpers/cli.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
let work = '';

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-cache-key-'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Entries of the last layer of the image in an OCI layout. */
async function lastLayerEntries(layout: string): Promise<string[]> {
  const blob = (d: string): string => join(layout, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as {
    layers: { digest: string }[];
  };
  const { stdout } = await execFileP('tar', ['-tzf', blob(manifest.layers.at(-1)!.digest)]);
  return stdout.split('\n').filter(Boolean).sort();
}

test(
  'ADD --unpack=false then ADD of the same archive: the second build unpacks',
  { skip: !isRoot && 'needs root (chroot rung)', timeout: 120_000 },
  async () => {
    const ctx = join(work, 'ctx');
    await mkdir(join(ctx, 'x'), { recursive: true });
    await writeFile(join(ctx, 'x', 'x.txt'), 'inside\n');
    await execFileP('tar', ['-C', join(ctx, 'x'), '-cf', join(ctx, 't.tar'), 'x.txt']);
    await writeFile(join(ctx, 'Dockerfile.keep'), 'FROM scratch\nADD --unpack=false t.tar /d/\n');
    await writeFile(join(ctx, 'Dockerfile.unpack'), 'FROM scratch\nADD t.tar /d/\n');
    const build = async (name: string): Promise<{ entries: string[]; log: string }> => {
      const out = join(work, `out-${name}`);
      const r = await kiln([
        'build',
        '-c',
        ctx,
        '-f',
        join(ctx, `Dockerfile.${name}`),
        '--no-push',
        '--oci-layout-path',
        out,
        '--cache-dir',
        join(work, 'cache'),
        '--isolation',
        'chroot',
        '--work-dir',
        join(work, `w-${name}`),
      ]);
      assert.equal(r.code, 0, r.stderr);
      return { entries: await lastLayerEntries(out), log: r.stderr };
    };
    const keep = await build('keep');
    assert.deepEqual(keep.entries, ['d/', 'd/t.tar']);
    const unpack = await build('unpack');
    assert.deepEqual(unpack.entries, ['d/', 'd/x.txt']);
    assert.match(unpack.log, /ADD t\.tar \/d\/ \(cache miss/);
    // The cache still answers each of them on a rebuild.
    const again = await build('keep');
    assert.deepEqual(again.entries, ['d/', 'd/t.tar']);
    assert.match(again.log, /ADD --unpack=false t\.tar \/d\/ \(cached, dir\)/);
  },
);
