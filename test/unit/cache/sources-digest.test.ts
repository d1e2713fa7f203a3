/**
 * sourcesDigest: what a COPY's key sees of its context files. Entries come from the stat index when
 * unchanged (read synchronously) and from their content otherwise; both paths must give one digest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile, utimes } from 'node:fs/promises';
import { lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StatIndex, sourcesDigest } from '../../../src/cache/sources-digest.ts';

async function tree(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-digest-'));
  await mkdir(join(dir, 'src', 'a', 'b'), { recursive: true });
  for (let i = 0; i < 150; i++) await writeFile(join(dir, 'src', 'a', `f${i}`), `file ${i}\n`);
  await writeFile(join(dir, 'src', 'a', 'b', 'deep'), 'deep\n');
  await symlink('a/f1', join(dir, 'src', 'link'));
  return dir;
}

const digestOf = (dir: string, index: StatIndex, skip?: (p: string) => boolean): Promise<string> =>
  sourcesDigest([{ hostPath: join(dir, 'src'), relPath: 'src' }], index, skip);

test('a warm stat index gives the digest a cold one gives, and answers for an unchanged file', async (t) => {
  const dir = await tree();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const index = new StatIndex();
  const cold = await digestOf(dir, index);
  const f = join(dir, 'src', 'a', 'f7');
  assert.match(index.cachedHash(f, lstatSync(f, { bigint: true })) ?? '', /^[0-9a-f]{64}$/);
  assert.equal(await digestOf(dir, index), cold);
  assert.equal(await digestOf(dir, new StatIndex()), cold);
});

test('content, mode, link target, a new file and a hidden file each change the digest as they should', async (t) => {
  const dir = await tree();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const index = new StatIndex();
  const seen = new Set<string>([await digestOf(dir, index)]);
  const changed = async (what: string): Promise<void> => {
    const d = await digestOf(dir, index);
    assert.ok(!seen.has(d), `${what} changes the digest`);
    assert.equal(await digestOf(dir, new StatIndex()), d, `${what}: a cold index agrees`);
    seen.add(d);
  };
  const f = join(dir, 'src', 'a', 'f3');
  // Same size, same mtime: only ctime and content tell (the index must not answer from its record).
  const st = lstatSync(f);
  await writeFile(f, 'FILE 3\n');
  await utimes(f, st.atime, st.mtime);
  await changed('content');
  await chmod(f, 0o755);
  await changed('mode');
  await rm(join(dir, 'src', 'link'));
  await symlink('a/f2', join(dir, 'src', 'link'));
  await changed('link target');
  await writeFile(join(dir, 'src', 'a', 'b', 'new'), 'new\n');
  await changed('a new file');
  const before = await digestOf(dir, index);
  assert.equal(
    await digestOf(dir, index, (p) => p.endsWith('/new')),
    [...seen].at(-2),
    'skipping the new file gives the digest from before it',
  );
  assert.equal(await digestOf(dir, index), before);
});
