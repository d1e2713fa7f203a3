import { test } from 'node:test';
import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { isCleanAbsolute, joinChild, joinUnder, normalizeImagePath } from '../../../src/fs/clean-join.ts';

const roots = [
  '/var/lib/kiln/upper',
  '/',
  '/a//b',
  '/a/./b',
  '/a/../b',
  '/a/b/',
  'rel/dir',
  '',
  '/x/.',
  '/x/..',
];
const images = [
  '/etc/passwd',
  '/',
  '',
  '/a//b',
  '/a/./b',
  '/a/../../b',
  '/a/b/',
  'rel',
  '/.wh.x',
  '/..',
  '/.',
  '/ü/ß',
];
const names = ['file', '.', '..', '', 'a/b', '.hidden', '...', 'ü'];

test('joinUnder, joinChild and normalizeImagePath give exactly what node:path gives', () => {
  for (const r of roots) {
    for (const p of images) assert.equal(joinUnder(r, p), posix.join(r, p), `joinUnder(${r}, ${p})`);
    for (const n of names) assert.equal(joinChild(r, n), posix.join(r, n), `joinChild(${r}, ${n})`);
  }
  for (const p of [...images, ...roots])
    assert.equal(normalizeImagePath(p), posix.normalize('/' + p).replace(/\/+$/, ''), `normalize ${p}`);
});

test('clean absolute paths are told from the rest', () => {
  for (const p of ['/a', '/a/b', '/a/.b', '/a/..b', '/...']) assert.ok(isCleanAbsolute(p), p);
  for (const p of ['/', '', 'a', '/a/', '//a', '/a//b', '/./a', '/a/.', '/a/..', '/a/../b'])
    assert.ok(!isCleanAbsolute(p), p);
});
