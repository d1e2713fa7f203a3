/** The one "changed" rule of both snapshot engines (continuity's sameFile), case by case. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareMeta, sameContent, sameXattrs, type EntryMeta } from '../../../src/fs/same-entry.ts';

const S = 1_000_000_000n;
const file = (o: Partial<EntryMeta> = {}): EntryMeta => ({
  mode: 0o100644n,
  uid: 0n,
  gid: 0n,
  size: 5n,
  mtimeNs: 1_700_000_000n * S + 123n,
  rdev: 0n,
  ...o,
});

test('equal metadata with nanosecond mtimes is the same file; any field apart is a change', () => {
  assert.equal(compareMeta(file(), file()), 'same');
  for (const o of [
    { mode: 0o100600n },
    { mode: 0o120644n },
    { uid: 1n },
    { gid: 1n },
    { size: 6n },
    { rdev: 1n },
    { mtimeNs: 1_700_000_000n * S + 124n },
    { mtimeNs: 1_700_000_001n * S + 123n },
    // One side truncated, the other not: continuity calls that a change.
    { mtimeNs: 1_700_000_000n * S },
  ]) {
    assert.equal(
      compareMeta(file(), file(o)),
      'changed',
      JSON.stringify(o, (_, v: unknown) => String(v)),
    );
  }
});

test('whole-second mtimes on both sides: the bytes decide, except for an empty file', () => {
  const t = { mtimeNs: 1_700_000_000n * S };
  assert.equal(compareMeta(file(t), file(t)), 'content');
  assert.equal(compareMeta(file({ ...t, size: 0n }), file({ ...t, size: 0n })), 'same');
  assert.equal(compareMeta(file({ ...t, mode: 0o010644n }), file({ ...t, mode: 0o010644n })), 'same');
});

test('symlinks compare their targets, whatever the times say', () => {
  const link = (target: string, mtimeNs = 5n * S) =>
    file({ mode: 0o120777n, size: BigInt(target.length), mtimeNs, target });
  assert.equal(compareMeta(link('a'), link('a')), 'same');
  assert.equal(compareMeta(link('a'), link('b')), 'changed');
  assert.equal(compareMeta(link('a', 5n * S + 1n), link('b', 5n * S + 1n)), 'changed');
  assert.equal(
    compareMeta({ ...link('a'), target: undefined }, { ...link('a'), target: undefined }),
    'content',
  );
});

test("a directory's size and mtime are no change; its mode and owner are", () => {
  const dir = (o: Partial<EntryMeta> = {}) => file({ mode: 0o040755n, size: 4096n, ...o });
  assert.equal(compareMeta(dir(), dir({ size: 8192n, mtimeNs: 9n * S })), 'same');
  assert.equal(compareMeta(dir(), dir({ mode: 0o040700n })), 'changed');
  assert.equal(compareMeta(dir(), dir({ uid: 1000n })), 'changed');
});

test('xattrs: absent equals empty; names and values must match', () => {
  const m = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [k, Buffer.from(v)]));
  assert.equal(sameXattrs(undefined, new Map()), true);
  assert.equal(sameXattrs(m({ 'security.capability': 'x' }), m({ 'security.capability': 'x' })), true);
  assert.equal(sameXattrs(m({ 'security.capability': 'x' }), m({ 'security.capability': 'y' })), false);
  assert.equal(sameXattrs(m({ 'user.a': 'x' }), m({ 'user.b': 'x' })), false);
  assert.equal(sameXattrs(m({ 'user.a': 'x' }), undefined), false);
});

test('sameContent reads both files through, past one chunk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-same-'));
  try {
    const big = Buffer.alloc(200_000, 7);
    writeFileSync(join(dir, 'a'), big);
    writeFileSync(join(dir, 'b'), big);
    const other = Buffer.from(big);
    other[150_000] = 8;
    writeFileSync(join(dir, 'c'), other);
    assert.equal(sameContent(join(dir, 'a'), join(dir, 'b')), true);
    assert.equal(sameContent(join(dir, 'a'), join(dir, 'c')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
