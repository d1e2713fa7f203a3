/**
 * The extracted-tree store on real directories: chain ids as the OCI spec defines them, a kept tree
 * cloned back as hard links, what a crash leaves, LRU eviction under the cap, and a store on another
 * filesystem than the work dir (hard links impossible: the store turns itself off, builds go on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainId, TreeStore } from '../../../src/cache/tree-store.ts';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const C = `sha256:${'c'.repeat(64)}`;

function store(dir: string, maxBytes = 1 << 30, lines: string[] = []): TreeStore {
  return new TreeStore({ dir, identity: 'uid0-test', maxBytes, debug: (m) => lines.push(m) });
}

async function tree(dir: string, files: Record<string, string>): Promise<string> {
  for (const [p, body] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), body);
  }
  return dir;
}

test('chain ids follow the OCI image spec', () => {
  assert.equal(chainId([]), undefined);
  assert.equal(chainId([A]), A);
  const ab = `sha256:${createHash('sha256').update(`${A} ${B}`).digest('hex')}`;
  assert.equal(chainId([A, B]), ab);
  assert.equal(chainId([A, B, C]), `sha256:${createHash('sha256').update(`${ab} ${C}`).digest('hex')}`);
  assert.notEqual(chainId([B, A]), ab);
});

test('a kept tree comes back as hard links to the kept files, under its chain only', async () => {
  const w = await mkdtemp(join(tmpdir(), 'kiln-trees-'));
  const s = store(join(w, 'trees'));
  const src = await tree(join(w, 'src'), { 'etc/os-release': 'x\n', 'usr/bin/tool': 'bin' });
  await s.keep([A, B], src);
  const dest = join(w, 'dest');
  assert.equal(await s.restore([A], dest), false, 'a prefix that was never kept');
  assert.equal(await s.restore([B, A], dest), false, 'the same layers in another order');
  assert.equal(await s.restore([A, B], dest), true);
  assert.equal(await readFile(join(dest, 'usr/bin/tool'), 'utf8'), 'bin');
  const [a, b] = await Promise.all([stat(join(src, 'usr/bin/tool')), stat(join(dest, 'usr/bin/tool'))]);
  assert.equal(a.ino, b.ino, 'a clone, not a copy');
  // Keeping the same chain again (another build) leaves the first entry as it is.
  await s.keep([A, B], await tree(join(w, 'other'), { different: '1' }));
  const again = join(w, 'again');
  assert.equal(await s.restore([A, B], again), true);
  assert.deepEqual((await readdir(again)).sort(), ['etc', 'usr']);
  await rm(w, { recursive: true, force: true });
});

test('what a build killed mid-keep leaves is never taken for a tree, and goes once stale', async () => {
  const w = await mkdtemp(join(tmpdir(), 'kiln-trees-'));
  const s = store(join(w, 'trees'));
  const hex = A.slice(7);
  // A half-copied entry under its final name without meta.json, and a stale temp dir.
  await tree(join(w, 'trees/uid0-test', hex, 'rootfs'), { half: '1' });
  const tmp = join(w, 'trees/uid0-test/.tmp-1-dead');
  await tree(join(tmp, 'rootfs'), { partial: '1' });
  const old = new Date(Date.now() - 2 * 3600_000);
  await utimes(tmp, old, old);
  await utimes(join(w, 'trees/uid0-test', hex), old, old);
  assert.equal(await s.restore([A], join(w, 'dest')), false);
  await s.evict();
  assert.equal(await stat(tmp).catch(() => null), null);
  assert.equal(await stat(join(w, 'trees/uid0-test', hex)).catch(() => null), null);
  // Now the chain can be kept for real.
  await s.keep([A], await tree(join(w, 'src'), { whole: '1' }));
  assert.equal(await s.restore([A], join(w, 'dest2')), true);
  assert.equal(await readFile(join(w, 'dest2/whole'), 'utf8'), '1');
  await rm(w, { recursive: true, force: true });
});

test('least recently used trees go first once the store is over its cap', async () => {
  const w = await mkdtemp(join(tmpdir(), 'kiln-trees-'));
  const lines: string[] = [];
  // Each tree holds 1,000 bytes; the cap holds two.
  const s = store(join(w, 'trees'), 2500, lines);
  for (const [i, id] of [A, B, C].entries()) {
    if (i === 2) {
      // A was used after B was kept: B is now the least recently used.
      assert.equal(await s.restore([A], join(w, 'use-a')), true);
      await new Promise((r) => setTimeout(r, 20));
    }
    await s.keep([id], await tree(join(w, `src${i}`), { f: 'x'.repeat(1000) }));
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await s.restore([A], join(w, 'a')), true);
  assert.equal(await s.restore([B], join(w, 'b')), false, 'B was evicted');
  assert.equal(await s.restore([C], join(w, 'c')), true);
  assert.ok(lines.some((l) => l.includes('evicted')));
  await rm(w, { recursive: true, force: true });
});

test(
  'a store on another filesystem turns itself off instead of failing the build',
  { skip: process.getuid?.() !== 0 },
  async () => {
    const w = await mkdtemp(join(tmpdir(), 'kiln-trees-'));
    const mnt = join(w, 'tmpfs');
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', mnt]);
    try {
      const lines: string[] = [];
      const s = store(join(mnt, 'trees'), 1 << 30, lines);
      await s.keep([A], await tree(join(w, 'src'), { f: '1' }));
      assert.ok(
        lines.some((l) => /different filesystems/.test(l)),
        lines.join('\n'),
      );
      assert.equal(await s.restore([A], join(w, 'dest')), false);
      assert.deepEqual(await readdir(join(mnt, 'trees/uid0-test')), [], 'no half entry left behind');
    } finally {
      execFileSync('umount', [mnt]);
      await rm(w, { recursive: true, force: true });
    }
  },
);
