import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveChown, resolveUser } from '../../../src/executor/passwd.ts';
import { KilnError } from '../../../src/util/errors.ts';

let root = '';
before(() => {
  root = mkdtempSync(join(tmpdir(), 'kiln-passwd-'));
  mkdirSync(join(root, 'etc'));
  writeFileSync(
    join(root, 'etc/passwd'),
    [
      'root:x:0:0:root:/root:/bin/sh',
      'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
      'app:x:1000:1000::/home/app:/bin/sh',
      'web:x:1001:33::/srv/web:/bin/sh',
      '# comment line',
      'broken line',
    ].join('\n'),
  );
  writeFileSync(
    join(root, 'etc/group'),
    ['root:x:0:', 'www-data:x:33:web', 'app:x:1000:', 'docker:x:999:app,web', 'audio:x:29:app'].join('\n'),
  );
});
after(() => rmSync(root, { recursive: true, force: true }));

const userCases: Array<[string, { uid: number; gid: number; additionalGids: number[]; home: string }]> = [
  ['root', { uid: 0, gid: 0, additionalGids: [], home: '/root' }],
  ['app', { uid: 1000, gid: 1000, additionalGids: [999, 29], home: '/home/app' }],
  ['web', { uid: 1001, gid: 33, additionalGids: [999], home: '/srv/web' }],
  ['1000', { uid: 1000, gid: 1000, additionalGids: [999, 29], home: '/home/app' }],
  ['4242', { uid: 4242, gid: 0, additionalGids: [], home: '/' }],
  ['app:docker', { uid: 1000, gid: 999, additionalGids: [], home: '/home/app' }],
  ['app:5', { uid: 1000, gid: 5, additionalGids: [], home: '/home/app' }],
  ['4242:4243', { uid: 4242, gid: 4243, additionalGids: [], home: '/' }],
];
for (const [spec, want] of userCases) {
  test(`USER ${spec} resolves through the stage's /etc/passwd`, async () => {
    assert.deepEqual(await resolveUser(root, spec), want);
  });
}

test('USER with an unknown name fails with the Dockerfile line and a hint', async () => {
  await assert.rejects(resolveUser(root, 'nobody', { file: 'Dockerfile', line: 9 }), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, 'UNKNOWN_USER');
    assert.match(e.format(), /^Dockerfile:9: unable to find user nobody/);
    return true;
  });
});

const chownCases: Array<[string, { uid: number; gid: number }]> = [
  ['app', { uid: 1000, gid: 1000 }],
  ['web', { uid: 1001, gid: 33 }],
  ['1001', { uid: 1001, gid: 1001 }],
  ['10:11', { uid: 10, gid: 11 }],
  ['app:www-data', { uid: 1000, gid: 33 }],
  ['55:docker', { uid: 55, gid: 999 }],
];
for (const [spec, want] of chownCases) {
  test(`--chown=${spec} follows BuildKit (named user: primary group; numeric: gid = uid)`, async () => {
    assert.deepEqual(await resolveChown(root, spec), want);
  });
}

for (const bad of ['ghost', 'app:ghosts']) {
  test(`--chown=${bad} names the missing entry`, async () => {
    await assert.rejects(resolveChown(root, bad, { file: 'Dockerfile', line: 4 }), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.match(e.message, /ghost/);
      assert.equal(e.position?.line, 4);
      return true;
    });
  });
}
