import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeTree, removeTreeInBackground } from '../../../src/fs/remove-tree.ts';

test('removeTree deletes a deep tree with links, and a missing dir is fine', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-rmtree-'));
  for (let i = 0; i < 20; i++) {
    mkdirSync(join(dir, `d${i}`, 'sub'), { recursive: true });
    writeFileSync(join(dir, `d${i}`, 'sub', 'f'), 'x');
    symlinkSync('/etc/passwd', join(dir, `d${i}`, 'link'));
  }
  mkdirSync(join(dir, 'ro'));
  writeFileSync(join(dir, 'ro', 'f'), 'x');
  execFileSync('chmod', ['0500', join(dir, 'ro')]);
  await removeTree(dir);
  assert.equal(existsSync(dir), false);
  assert.ok(existsSync('/etc/passwd'), 'a symlink target outside is untouched');
  await removeTree(dir);
});

test(
  'removeTree never empties a filesystem still mounted inside the tree',
  { skip: process.getuid?.() !== 0 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-rmtree-'));
    const mnt = join(dir, 'stage', 'merged');
    mkdirSync(mnt, { recursive: true });
    writeFileSync(join(dir, 'stage', 'other'), 'x');
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', mnt]);
    try {
      writeFileSync(join(mnt, 'keep'), 'precious');
      await removeTree(dir);
      assert.equal(readFileSync(join(mnt, 'keep'), 'utf8'), 'precious');
      assert.equal(existsSync(join(dir, 'stage', 'other')), false);
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('removeTreeInBackground returns before the tree is gone, and the tree goes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-rmtree-bg-'));
  for (let i = 0; i < 200; i++) writeFileSync(join(dir, `f${i}`), 'x');
  assert.equal(await removeTreeInBackground(dir), true);
  for (let waited = 0; existsSync(dir) && waited < 20_000; waited += 50) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(existsSync(dir), false, 'removed by the detached rm');
});
