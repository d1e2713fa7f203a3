/**
 * LazyRootfs with a tree store (fakes record the calls): the longest kept prefix is cloned, only the
 * layers it does not cover are extracted, and a tree built the long way is kept for the next build.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LazyRootfs, type TreeReuse } from '../../../src/executor/lazy-rootfs.ts';

function fake(
  kept: string[][],
  baseLayers: readonly string[] | null = ['base1', 'base2'],
  opts: { extractMs?: number; cloneMs?: number } = {},
) {
  const sleep = (ms = 0) => new Promise((r) => setTimeout(r, ms));
  const calls: string[] = [];
  const reuse: TreeReuse = {
    baseLayers: baseLayers ?? undefined,
    restore: async (ids) => {
      calls.push(`restore ${ids.join(',')}`);
      const hit = kept.some((k) => k.join(',') === ids.join(','));
      if (hit) await sleep(opts.cloneMs);
      return hit;
    },
    keep: async (ids) => void calls.push(`keep ${ids.join(',')}`),
  };
  const tree = new LazyRootfs(
    async () => void calls.push('base'),
    async (blob) => {
      calls.push(`extract ${blob}`);
      await sleep(opts.extractMs);
    },
    { onReal: async () => void calls.push('real'), reuse },
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

test('only the base kept: slow cached layers are extracted on the clone, and the whole is kept', async () => {
  const { tree, calls } = fake([['base1', 'base2']], undefined, { extractMs: 40, cloneMs: 1 });
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

test('the longest kept prefix wins over the base alone, and layers quicker than a clone are not kept', async () => {
  const { tree, calls } = fake(
    [
      ['base1', 'base2'],
      ['base1', 'base2', 'd1'],
    ],
    undefined,
    { cloneMs: 40 },
  );
  await tree.addLayer('blob1', 'd1');
  await tree.addLayer('blob2', 'd2');
  await tree.addLayer('blob3', 'd3');
  await tree.ensure();
  assert.deepEqual(calls, [
    'restore base1,base2,d1,d2,d3',
    'restore base1,base2,d1,d2',
    'restore base1,base2,d1',
    'extract blob2',
    'extract blob3',
    'real',
  ]);
});

test('a scratch stage: a kept prefix of its layers is found without a base', async () => {
  const { tree, calls } = fake([['d1']], [], { extractMs: 40 });
  await tree.addLayer('blob1', 'd1');
  await tree.addLayer('blob2', 'd2');
  await tree.ensure();
  assert.deepEqual(calls, ['restore d1,d2', 'restore d1', 'extract blob2', 'keep d1,d2', 'real']);
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

test('nothing kept: queued layers inflate one after the other while the base is made; each is extracted from what that made', async () => {
  const calls: string[] = [];
  const sleep = (ms = 0) => new Promise((r) => setTimeout(r, ms));
  let baseDone = false;
  const inflatedWhileBase: string[] = [];
  const tree = new LazyRootfs(
    async () => {
      calls.push('base');
      await sleep(60);
      baseDone = true;
    },
    async (blob) => void calls.push(`extract ${blob}`),
    {
      ahead: async (blob) => {
        if (!baseDone) inflatedWhileBase.push(blob);
        await sleep(5);
        if (blob === 'bad') throw new Error('cannot inflate');
        return blob === 'small' ? blob : `${blob}.tar`;
      },
    },
  );
  await tree.addLayer('big');
  await tree.addLayer('bad');
  await tree.addLayer('small');
  await tree.ensure();
  assert.deepEqual(inflatedWhileBase, ['big', 'bad', 'small']);
  // A failed inflation falls back to the blob itself.
  assert.deepEqual(calls, ['base', 'extract big.tar', 'extract bad', 'extract small']);
});
