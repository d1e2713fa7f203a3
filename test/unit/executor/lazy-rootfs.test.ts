/**
 * LazyRootfs with a tree store (fakes record the calls): the longest kept prefix is cloned, only the
 * layers it does not cover are extracted, and a tree built the long way is kept for the next build.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LazyRootfs, type TreeReuse } from '../../../src/executor/lazy-rootfs.ts';

function fake(kept: string[][], baseLayers: readonly string[] | null = ['base1', 'base2']) {
  const calls: string[] = [];
  const reuse: TreeReuse = {
    baseLayers: baseLayers ?? undefined,
    restore: async (ids) => {
      calls.push(`restore ${ids.join(',')}`);
      return kept.some((k) => k.join(',') === ids.join(','));
    },
    keep: async (ids) => void calls.push(`keep ${ids.join(',')}`),
  };
  const tree = new LazyRootfs(
    async () => void calls.push('base'),
    async (blob) => void calls.push(`extract ${blob}`),
    async () => void calls.push('real'),
    reuse,
  );
  return { tree, calls };
}

test('every layer kept: one clone, nothing extracted, nothing kept again', async () => {
  const { tree, calls } = fake([['base1', 'base2', 'd1', 'd2']]);
  await tree.addLayer('blob1', 'd1');
  await tree.addLayer('blob2', 'd2');
  await tree.ensure();
  assert.deepEqual(calls, ['restore base1,base2,d1,d2', 'real']);
});

test('only the base kept: the cached layers are extracted on the clone, and the whole is kept', async () => {
  const { tree, calls } = fake([['base1', 'base2']]);
  await tree.addLayer('blob1', 'd1');
  await tree.ensure();
  assert.deepEqual(calls, [
    'restore base1,base2,d1',
    'restore base1,base2',
    'extract blob1',
    'keep base1,base2,d1',
    'real',
  ]);
});

test('nothing kept: the base is built, the layers extracted, and the tree kept', async () => {
  const { tree, calls } = fake([]);
  await tree.addLayer('blob1', 'd1');
  await tree.ensure();
  assert.deepEqual(calls.slice(2), ['base', 'extract blob1', 'keep base1,base2,d1', 'real']);
});

test('a layer without a diff id, or a base its layers do not describe, never goes through the store', async () => {
  for (const [base, diff] of [
    [['base1'], undefined],
    [undefined, 'd1'],
  ] as const) {
    const { tree, calls } = fake([['base1', 'd1']], base ?? null);
    await tree.addLayer('blob1', diff);
    await tree.ensure();
    assert.deepEqual(calls, ['base', 'extract blob1', 'real']);
  }
});

test('layers that arrive after the tree is real are extracted at once', async () => {
  const { tree, calls } = fake([['base1', 'base2']]);
  await tree.ensure();
  await tree.addLayer('late', 'd9');
  assert.deepEqual(calls, ['restore base1,base2', 'real', 'extract late']);
});
