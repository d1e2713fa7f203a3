import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  familiarName,
  familiarString,
  formatReference,
  parseReference,
  registryApiHost,
  repoKey,
  withDefaultTag,
  type Reference,
} from '../../../src/registry/reference.ts';
import { KilnError } from '../../../src/util/errors.ts';

const H = 'a'.repeat(64);
const D = `sha256:${'0123456789abcdef'.repeat(4)}`;

type Ok = [input: string, registry: string, repository: string, tag?: string, digest?: string];

const valid: Ok[] = [
  ['alpine', 'docker.io', 'library/alpine'],
  ['alpine:3.20', 'docker.io', 'library/alpine', '3.20'],
  ['alpine:latest', 'docker.io', 'library/alpine', 'latest'],
  [`alpine@${D}`, 'docker.io', 'library/alpine', undefined, D],
  [`alpine:3.20@${D}`, 'docker.io', 'library/alpine', '3.20', D],
  ['library/alpine', 'docker.io', 'library/alpine'],
  ['user/app', 'docker.io', 'user/app'],
  ['user/app:v1', 'docker.io', 'user/app', 'v1'],
  ['docker.io/alpine', 'docker.io', 'library/alpine'],
  ['docker.io/library/alpine:edge', 'docker.io', 'library/alpine', 'edge'],
  ['docker.io/user/app', 'docker.io', 'user/app'],
  ['index.docker.io/alpine', 'docker.io', 'library/alpine'],
  ['index.docker.io/user/app:1', 'docker.io', 'user/app', '1'],
  ['ghcr.io/owner/app', 'ghcr.io', 'owner/app'],
  ['ghcr.io/owner/app:sha-abc123', 'ghcr.io', 'owner/app', 'sha-abc123'],
  ['ghcr.io/app', 'ghcr.io', 'app'],
  ['quay.io/a/b/c/d:x', 'quay.io', 'a/b/c/d', 'x'],
  ['localhost/app', 'localhost', 'app'],
  ['localhost:5000/app', 'localhost:5000', 'app'],
  ['localhost:5000/team/app:1.0', 'localhost:5000', 'team/app', '1.0'],
  [`localhost:5000/team/app:1.0@${D}`, 'localhost:5000', 'team/app', '1.0', D],
  ['registry.example.com:443/a', 'registry.example.com:443', 'a'],
  ['myhost:5000/app', 'myhost:5000', 'app'],
  ['127.0.0.1:5000/app:t', '127.0.0.1:5000', 'app', 't'],
  ['[::1]:5000/app:t', '[::1]:5000', 'app', 't'],
  ['[fe80::1]/app', '[fe80::1]', 'app'],
  ['localhost:5000', 'docker.io', 'library/localhost', '5000'],
  ['my-reg.io/x', 'my-reg.io', 'x'],
  ['user/my_app', 'docker.io', 'user/my_app'],
  ['user/my__app', 'docker.io', 'user/my__app'],
  ['user/my-app', 'docker.io', 'user/my-app'],
  ['user/my---app', 'docker.io', 'user/my---app'],
  ['user/my.app', 'docker.io', 'user/my.app'],
  ['a/b:_tag', 'docker.io', 'a/b', '_tag'],
  ['a/b:Tag.With-Upper_1', 'docker.io', 'a/b', 'Tag.With-Upper_1'],
  [`a/b:${'t'.repeat(128)}`, 'docker.io', 'a/b', 't'.repeat(128)],
  [`a@sha512:${'b'.repeat(128)}`, 'docker.io', 'library/a', undefined, `sha512:${'b'.repeat(128)}`],
  ['Registry/app', 'Registry', 'app'],
  ['x123/y456', 'docker.io', 'x123/y456'],
];

type Bad = [input: string, fragment: string];

const invalid: Bad[] = [
  ['', 'empty'],
  ['Alpine', 'repository name must be lowercase'],
  ['user/App', 'repository name must be lowercase'],
  ['ghcr.io/Owner/app', 'repository name must be lowercase'],
  ['alpine:', 'tag'],
  ['alpine:-bad', 'tag'],
  ['alpine:.bad', 'tag'],
  [`alpine:${'t'.repeat(129)}`, 'longer than 128'],
  ['alpine@sha256:abc', 'digest'],
  [`alpine@sha256:${'A'.repeat(64)}`, 'lowercase hex'],
  [`alpine@sha256:${'a'.repeat(63)}`, '64'],
  [`alpine@md5:${'a'.repeat(32)}`, 'unsupported digest algorithm'],
  ['alpine@', 'digest'],
  [H, 'image ID'],
  ['user//app', 'empty path component'],
  ['user/app/', 'empty path component'],
  ['/app', 'empty path component'],
  ['ghcr.io/', 'repository name is empty'],
  ['user/-app', 'path component'],
  ['user/app-', 'path component'],
  ['user/a..b', 'path component'],
  ['user/a___b', 'path component'],
  ['host-.com/app', 'registry host'],
  [' alpine', 'whitespace'],
  ['a b', 'path component'],
  [`a/${'x'.repeat(260)}`, 'longer than 255'],
  ['ghcr.io:abc/app', 'registry host'],
];

describe('parseReference: valid', () => {
  for (const [input, registry, repository, tag, digest] of valid) {
    test(JSON.stringify(input.length > 80 ? input.slice(0, 80) + '…' : input), () => {
      const want: Reference = { registry, repository };
      if (tag !== undefined) want.tag = tag;
      if (digest !== undefined) want.digest = digest;
      assert.deepEqual(parseReference(input), want);
    });
  }
});

describe('parseReference: invalid', () => {
  for (const [input, fragment] of invalid) {
    test(`${JSON.stringify(input.length > 80 ? input.slice(0, 80) + '…' : input)} -> ${fragment}`, () => {
      assert.throws(
        () => parseReference(input),
        (e: unknown) => {
          assert.ok(e instanceof KilnError);
          assert.equal(e.category, 'usage');
          assert.equal(e.code, 'BAD_REFERENCE');
          assert.ok(e.message.includes(JSON.stringify(input)), `message quotes the input: ${e.message}`);
          assert.ok(e.message.includes(fragment), `message ${JSON.stringify(e.message)} has ${fragment}`);
          assert.ok(e.hint && e.hint.includes('alpine:3.20'), 'hint shows a valid example');
          assert.ok(!e.message.includes('\n'));
          return true;
        },
      );
    });
  }
});

describe('formatReference / familiar forms', () => {
  const rows: [input: string, full: string, familiar: string, familiarStr: string][] = [
    ['alpine', 'docker.io/library/alpine', 'alpine', 'alpine'],
    ['alpine:3.20', 'docker.io/library/alpine:3.20', 'alpine', 'alpine:3.20'],
    ['user/app:v1', 'docker.io/user/app:v1', 'user/app', 'user/app:v1'],
    ['library/a/b', 'docker.io/library/a/b', 'library/a/b', 'library/a/b'],
    ['ghcr.io/o/app:1', 'ghcr.io/o/app:1', 'ghcr.io/o/app', 'ghcr.io/o/app:1'],
    [
      'localhost:5000/library/x',
      'localhost:5000/library/x',
      'localhost:5000/library/x',
      'localhost:5000/library/x',
    ],
    [`alpine:1@${D}`, `docker.io/library/alpine:1@${D}`, 'alpine', `alpine:1@${D}`],
    [`[::1]:5000/a@${D}`, `[::1]:5000/a@${D}`, '[::1]:5000/a', `[::1]:5000/a@${D}`],
  ];
  for (const [input, full, familiar, familiarStr] of rows) {
    test(input.slice(0, 60), () => {
      const ref = parseReference(input);
      assert.equal(formatReference(ref), full);
      assert.equal(familiarName(ref), familiar);
      assert.equal(familiarString(ref), familiarStr);
      // round trip: the full form parses back to the same reference
      assert.deepEqual(parseReference(full), ref);
    });
  }
});

describe('withDefaultTag', () => {
  const rows: [input: string, full: string][] = [
    ['alpine', 'docker.io/library/alpine:latest'],
    ['alpine:3', 'docker.io/library/alpine:3'],
    [`alpine@${D}`, `docker.io/library/alpine@${D}`],
    ['localhost:5000/x', 'localhost:5000/x:latest'],
  ];
  for (const [input, full] of rows) {
    test(input.slice(0, 60), () => {
      const ref = parseReference(input);
      const before = { ...ref };
      assert.equal(formatReference(withDefaultTag(ref)), full);
      assert.deepEqual(ref, before, 'input is not mutated');
    });
  }
});

describe('registryApiHost / repoKey', () => {
  const rows: [registry: string, api: string][] = [
    ['docker.io', 'registry-1.docker.io'],
    ['index.docker.io', 'registry-1.docker.io'],
    ['ghcr.io', 'ghcr.io'],
    ['localhost:5000', 'localhost:5000'],
    ['[::1]:5000', '[::1]:5000'],
  ];
  for (const [registry, api] of rows) {
    test(`${registry} -> ${api}`, () => assert.equal(registryApiHost(registry), api));
  }
  test('repoKey', () => {
    assert.equal(repoKey(parseReference('alpine:3')), 'docker.io/library/alpine');
    assert.equal(repoKey(parseReference(`localhost:5000/a/b:1@${D}`)), 'localhost:5000/a/b');
  });
});
