/**
 * The "top of directory hierarchy" attribute (chattr +T) on the dirs whose children are whole trees:
 * set where the filesystem has it (ext4 here), quietly skipped where it has not (tmpfs), and set by
 * a real build on its work dir and on the tree store's root, before either holds a tree.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spreadSubdirs } from '../../../src/fs/spread-dirs.ts';
import { TreeStore } from '../../../src/cache/tree-store.ts';
import { kiln } from '../../helpers/cli.ts';

let work = '';
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-spread-'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** ext2/ext3 is what stat(1) calls every ext* filesystem. */
function onExt(dir: string): boolean {
  return execFileSync('stat', ['-f', '-c', '%T', dir]).toString().trim().startsWith('ext');
}

function topDir(dir: string): boolean {
  const flags = execFileSync('lsattr', ['-d', dir]).toString().split(' ')[0]!;
  return flags.includes('T');
}

test('spreadSubdirs sets +T where the filesystem has it and never throws where it has not', async (t) => {
  if (!onExt(work)) return t.skip('the temp dir is not on ext*');
  const a = join(work, 'a');
  const b = join(work, 'b');
  await mkdir(a);
  await mkdir(b);
  assert.equal(topDir(a), false);
  assert.equal(spreadSubdirs([a, b]), true);
  assert.equal(topDir(a), true);
  assert.equal(topDir(b), true);
  // A path that is not there (or a filesystem without the attribute) is a no, not an error.
  assert.equal(spreadSubdirs([join(work, 'missing')]), false);
  assert.equal(spreadSubdirs([]), false);
  if (process.getuid?.() === 0) {
    const tmpfs = join(work, 'tmpfs');
    await mkdir(tmpfs);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', tmpfs]);
    try {
      assert.equal(spreadSubdirs([tmpfs]), false);
    } finally {
      execFileSync('umount', [tmpfs]);
    }
  }
});

test('the tree store spreads its root before its pool or any entry is made', async (t) => {
  if (!onExt(work)) return t.skip('the temp dir is not on ext*');
  const dir = join(work, 'store');
  const s = new TreeStore({ dir, identity: 'uid0-test', maxBytes: 1 << 30, debug: () => undefined });
  assert.ok(s.files);
  assert.equal(topDir(join(dir, 'uid0-test')), true);
});

test('a build spreads its work dir and its tree store', async (t) => {
  if (!onExt(work)) return t.skip('the temp dir is not on ext*');
  if (process.getuid?.() !== 0) return t.skip('the build probe needs root here');
  const ctx = join(work, 'ctx');
  await mkdir(join(ctx, 'src'), { recursive: true });
  for (let i = 0; i < 3; i++) await writeFile(join(ctx, 'src', `f${i}`), `file ${i}\n`);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY src/ /src/\n');
  const wd = join(work, 'build-work');
  const cache = join(work, 'cache');
  const r = await kiln([
    'build',
    '-c',
    ctx,
    '--no-push',
    '--tar-path',
    join(work, 'out.tar'),
    '--work-dir',
    wd,
    '--cache-dir',
    cache,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(topDir(wd), true);
  const trees = join(cache, 'trees');
  const identities = execFileSync('ls', [trees]).toString().trim().split('\n');
  assert.ok(identities.length > 0);
  for (const id of identities) assert.equal(topDir(join(trees, id)), true, id);
});
