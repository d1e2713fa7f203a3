/**
 * The COPY file pool (src/fs/file-pool.ts) through copyIntoRoot on real directories: a second COPY of
 * an unchanged source to the same place links the pooled inode, and nothing else ever does: a changed
 * source, another destination path, a pooled file whose attributes changed, or a source with xattrs.
 */
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyIntoRoot, type CopyOptions } from '../../../src/executor/copy-files.ts';
import { FilePool } from '../../../src/fs/file-pool.ts';

let base = '';
let ctx = '';
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'kiln-pool-'));
  ctx = join(base, 'ctx');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'a.txt'), 'A');
  writeFileSync(join(ctx, 'b.txt'), 'B');
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

const src = (rel: string) => ({ hostPath: join(ctx, rel), relPath: rel, sourceRoot: ctx });
const opts = (pool: FilePool, o: Partial<CopyOptions> = {}): CopyOptions => ({
  dest: '/app/',
  workdir: '/',
  preserveOwnership: false,
  parents: false,
  multiple: true,
  pool,
  ...o,
});

let n = 0;
async function copy(pool: FilePool, rels: string[], o: Partial<CopyOptions> = {}): Promise<string> {
  const root = join(base, `root${n++}`);
  mkdirSync(root);
  await copyIntoRoot(root, rels.map(src), opts(pool, o));
  return root;
}

test('an unchanged source copied to the same place again is the pooled inode, with the same bytes and attributes', async () => {
  const pool = new FilePool(join(base, 'pool'));
  const r1 = await copy(pool, ['a.txt', 'b.txt']);
  assert.equal(pool.added, 2);
  const r2 = await copy(pool, ['a.txt', 'b.txt']);
  assert.equal(pool.linked, 2);
  for (const f of ['a.txt', 'b.txt']) {
    const one = lstatSync(join(r1, 'app', f));
    const two = lstatSync(join(r2, 'app', f));
    assert.equal(two.ino, one.ino);
    assert.equal(two.mode, one.mode);
    assert.equal(two.mtimeMs, one.mtimeMs);
    assert.equal(two.uid, 0);
  }
  // A changed source (new bytes, new mtime and ctime) is made anew; the unchanged one still links.
  writeFileSync(join(ctx, 'a.txt'), 'A2');
  const r3 = await copy(pool, ['a.txt', 'b.txt']);
  assert.notEqual(lstatSync(join(r3, 'app/a.txt')).ino, lstatSync(join(r1, 'app/a.txt')).ino);
  assert.equal(readFileSync(join(r3, 'app/a.txt'), 'utf8'), 'A2');
  assert.equal(readFileSync(join(r1, 'app/a.txt'), 'utf8'), 'A', 'the earlier tree keeps its bytes');
  assert.equal(lstatSync(join(r3, 'app/b.txt')).ino, lstatSync(join(r1, 'app/b.txt')).ino);
});

test('another destination path, mode or mtime never shares the inode', async () => {
  const pool = new FilePool(join(base, 'pool'));
  const r1 = await copy(pool, ['a.txt']);
  const ino = lstatSync(join(r1, 'app/a.txt')).ino;
  const other = await copy(pool, ['a.txt'], { dest: '/srv/' });
  assert.notEqual(lstatSync(join(other, 'srv/a.txt')).ino, ino);
  const chmodded = await copy(pool, ['a.txt'], { chmod: { kind: 'octal', mode: 0o600 } });
  assert.notEqual(lstatSync(join(chmodded, 'app/a.txt')).ino, ino);
  assert.equal(lstatSync(join(chmodded, 'app/a.txt')).mode & 0o777, 0o600);
  const dated = await copy(pool, ['a.txt'], { mtime: new Date('2002-01-01T00:00:00Z') });
  assert.notEqual(lstatSync(join(dated, 'app/a.txt')).ino, ino);
  assert.equal(pool.linked, 0);
});

test('a pooled file changed outside kiln is not linked again, and leaves the pool', async () => {
  const pool = new FilePool(join(base, 'pool'));
  const r1 = await copy(pool, ['a.txt']);
  chmodSync(join(r1, 'app/a.txt'), 0o777);
  const r2 = await copy(pool, ['a.txt']);
  const st = lstatSync(join(r2, 'app/a.txt'));
  assert.notEqual(st.ino, lstatSync(join(r1, 'app/a.txt')).ino);
  assert.equal(st.mode & 0o777, 0o644);
  assert.equal(pool.linked, 0);
  assert.equal(readdirSync(join(base, 'pool')).length, 1, 'the changed entry went, the new file came');
});

const hasSetfattr = (() => {
  try {
    execFileSync('setfattr', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('a source with xattrs is never shared with the pool', { skip: !hasSetfattr }, async () => {
  const pool = new FilePool(join(base, 'pool'));
  // Pooled first without xattrs, then the source gains one (its ctime changes too: a new key).
  await copy(pool, ['a.txt']);
  execFileSync('setfattr', ['-n', 'user.kiln-test', '-v', 'x', join(ctx, 'a.txt')]);
  const r2 = await copy(pool, ['a.txt']);
  const r3 = await copy(pool, ['a.txt']);
  const got = execFileSync('getfattr', [
    '-n',
    'user.kiln-test',
    '--only-values',
    join(r3, 'app/a.txt'),
  ]).toString();
  assert.equal(got, 'x');
  assert.notEqual(lstatSync(join(r3, 'app/a.txt')).ino, lstatSync(join(r2, 'app/a.txt')).ino);
  for (const f of readdirSync(join(base, 'pool'))) {
    const r = execFileSync('getfattr', ['-d', join(base, 'pool', f)]).toString();
    assert.doesNotMatch(r, /kiln-test/, 'no pooled file carries the xattr');
  }
});

test('prune removes only files no tree holds: unused too long, or oldest first beyond the cap', async () => {
  const dir = join(base, 'pool');
  mkdirSync(dir);
  for (const [name, size] of [
    ['old', 10],
    ['mid', 10],
    ['new', 10],
    ['held', 10],
  ] as const)
    writeFileSync(join(dir, name), 'x'.repeat(size));
  const holder = join(base, 'tree-file');
  execFileSync('ln', [join(dir, 'held'), holder]);
  // ctime cannot be set; utimes of mtime is not what prune reads, so age comes from the threshold.
  utimesSync(join(dir, 'old'), new Date(0), new Date(0));
  const pool = new FilePool(dir);
  assert.deepEqual(await pool.prune(60_000, 1000), { removed: 0, bytes: 30 }, 'nothing old, within the cap');
  const r = await pool.prune(60_000, 15);
  assert.equal(r.removed, 2, 'two of the three unheld files go to fit 15 bytes');
  assert.ok(readdirSync(dir).includes('held'), 'a file a tree holds stays');
  const all = await pool.prune(-1, 1000);
  assert.equal(all.removed, 1, 'unused beyond the age: the last unheld file');
  assert.deepEqual(readdirSync(dir), ['held']);
});
