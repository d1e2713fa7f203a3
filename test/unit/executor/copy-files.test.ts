import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdtempSync,
  mkdirSync,
  writeFileSync,
  rmSync,
  symlinkSync,
  lstatSync,
  readFileSync,
  readlinkSync,
  linkSync,
  utimesSync,
  chmodSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyIntoRoot, type CopyOptions } from '../../../src/executor/copy-files.ts';
import { parseChmod } from '../../../src/executor/chmod.ts';
import { resolveInRoot } from '../../../src/fs/rootpath.ts';
import { KilnError } from '../../../src/util/errors.ts';

let ctx = '';
let root = '';
let outside = '';
beforeEach(() => {
  const base = mkdtempSync(join(tmpdir(), 'kiln-copy-'));
  ctx = join(base, 'ctx');
  root = join(base, 'root');
  outside = join(base, 'outside');
  mkdirSync(join(ctx, 'src/lib'), { recursive: true });
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(ctx, 'a.txt'), 'A');
  writeFileSync(join(ctx, 'src/main.js'), 'main');
  writeFileSync(join(ctx, 'src/lib/util.js'), 'util');
  chmodSync(join(ctx, 'src/main.js'), 0o750);
  utimesSync(join(ctx, 'a.txt'), new Date('2001-02-03T04:05:06Z'), new Date('2001-02-03T04:05:06Z'));
});
afterEach(() => rmSync(join(root, '..'), { recursive: true, force: true }));

const opts = (o: Partial<CopyOptions>): CopyOptions => ({
  dest: '/',
  workdir: '/',
  preserveOwnership: false,
  parents: false,
  multiple: false,
  ...o,
});
const src = (rel: string) => ({ hostPath: join(ctx, rel), relPath: rel, sourceRoot: ctx });

test('file to a path without slash is written at that path', async () => {
  const r = await copyIntoRoot(root, [src('a.txt')], opts({ dest: '/opt/app/b.txt' }));
  assert.equal(readFileSync(join(root, 'opt/app/b.txt'), 'utf8'), 'A');
  assert.deepEqual(r.written, ['/opt', '/opt/app', '/opt/app/b.txt']);
});

test('file to a path with trailing slash goes inside it, mtime kept, owner root', async () => {
  await copyIntoRoot(root, [src('a.txt')], opts({ dest: '/opt/' }));
  const st = lstatSync(join(root, 'opt/a.txt'));
  assert.equal(st.mtime.toISOString(), '2001-02-03T04:05:06.000Z');
  assert.equal(st.uid, 0);
});

test('relative destinations resolve against WORKDIR', async () => {
  await copyIntoRoot(root, [src('a.txt')], opts({ dest: 'x/', workdir: '/srv' }));
  assert.ok(existsSync(join(root, 'srv/x/a.txt')));
});

test('a directory source copies its contents, not itself', async () => {
  await copyIntoRoot(root, [src('src')], opts({ dest: '/app' }));
  assert.equal(readFileSync(join(root, 'app/main.js'), 'utf8'), 'main');
  assert.equal(readFileSync(join(root, 'app/lib/util.js'), 'utf8'), 'util');
  assert.equal(lstatSync(join(root, 'app/main.js')).mode & 0o777, 0o750);
  assert.ok(!existsSync(join(root, 'app/src')));
});

test('--parents keeps the relative path of each source', async () => {
  await copyIntoRoot(root, [src('src/lib/util.js'), src('a.txt')], opts({ dest: '/p/', parents: true }));
  assert.ok(existsSync(join(root, 'p/src/lib/util.js')));
  assert.ok(existsSync(join(root, 'p/a.txt')));
});

test('several sources need a directory destination ending in /', async () => {
  await assert.rejects(
    copyIntoRoot(
      root,
      [src('a.txt'), src('src/main.js')],
      opts({ dest: '/file', position: { file: 'Dockerfile', line: 5 } }),
    ),
    (e: unknown) => e instanceof KilnError && e.code === 'COPY_DEST_NOT_DIR' && e.position?.line === 5,
  );
});

test('--chown and --chmod apply to files and created directories', async () => {
  await copyIntoRoot(
    root,
    [src('src')],
    opts({ dest: '/home/app/', chown: { uid: 1000, gid: 1001 }, chmod: parseChmod('640') }),
  );
  const f = lstatSync(join(root, 'home/app/main.js'));
  assert.equal(f.uid, 1000);
  assert.equal(f.gid, 1001);
  assert.equal(f.mode & 0o7777, 0o640);
  assert.equal(lstatSync(join(root, 'home')).uid, 1000);
});

test('setuid survives (chmod is applied after chown)', async () => {
  chmodSync(join(ctx, 'a.txt'), 0o4755);
  await copyIntoRoot(root, [src('a.txt')], opts({ dest: '/bin/a', chown: { uid: 5, gid: 5 } }));
  assert.equal(lstatSync(join(root, 'bin/a')).mode & 0o7777, 0o4755);
});

test('a symlinked destination directory is followed inside the root, never outside', async () => {
  mkdirSync(join(root, 'real'));
  symlinkSync('/real', join(root, 'work'));
  symlinkSync(outside, join(root, 'escape'));
  await copyIntoRoot(root, [src('a.txt')], opts({ dest: '/work/' }));
  assert.ok(existsSync(join(root, 'real/a.txt')));
  await copyIntoRoot(root, [src('a.txt')], opts({ dest: '/escape/' }));
  assert.equal(existsSync(join(outside, 'a.txt')), false, 'wrote outside the root');
  assert.equal(await resolveInRoot(root, '/escape/../../../etc'), join(root, 'etc'));
});

test('symlinks inside a copied directory stay links; hardlinks stay linked', async () => {
  symlinkSync('main.js', join(ctx, 'src/link.js'));
  linkSync(join(ctx, 'src/main.js'), join(ctx, 'src/hard.js'));
  await copyIntoRoot(root, [src('src')], opts({ dest: '/app/' }));
  assert.equal(readlinkSync(join(root, 'app/link.js')), 'main.js');
  assert.equal(lstatSync(join(root, 'app/hard.js')).ino, lstatSync(join(root, 'app/main.js')).ino);
});

test('--from sources keep their owner unless --chown is given', async () => {
  const { chownSync } = await import('node:fs');
  chownSync(join(ctx, 'a.txt'), 1234, 4321);
  await copyIntoRoot(root, [src('a.txt')], opts({ dest: '/k', preserveOwnership: true }));
  assert.equal(lstatSync(join(root, 'k')).uid, 1234);
  await copyIntoRoot(root, [src('a.txt')], opts({ dest: '/r' }));
  assert.equal(lstatSync(join(root, 'r')).uid, 0);
});

test('a top-level symlink source is followed inside its own tree, not on the host', async () => {
  writeFileSync(join(ctx, 'etc-passwd'), 'inside');
  mkdirSync(join(ctx, 'etc'));
  writeFileSync(join(ctx, 'etc/passwd'), 'context passwd');
  symlinkSync('/etc/passwd', join(ctx, 'pw'));
  await copyIntoRoot(root, [src('pw')], opts({ dest: '/pw' }));
  assert.equal(readFileSync(join(root, 'pw'), 'utf8'), 'context passwd');
  assert.equal(lstatSync(join(root, 'pw')).isFile(), true);
});

// Small files get their mode at creation and chown/chmod only when creation did not give them:
// modes the umask would cut, set-id bits, and a set-group-id destination directory's group.
test('modes the umask would cut and set-id bits are kept exactly; owner root in a set-group-id dir', async () => {
  const modes: Record<string, number> = {
    'm/open.txt': 0o666,
    'm/all.sh': 0o777,
    'm/suid': 0o4755,
    'm/sgid': 0o2711,
  };
  mkdirSync(join(ctx, 'm'));
  for (const [rel, mode] of Object.entries(modes)) {
    writeFileSync(join(ctx, rel), rel);
    chmodSync(join(ctx, rel), mode);
  }
  mkdirSync(join(root, 'shared'));
  chmodSync(join(root, 'shared'), 0o2775);
  const { chownSync } = await import('node:fs');
  chownSync(join(root, 'shared'), 0, 5);
  await copyIntoRoot(
    root,
    [src('m/open.txt'), src('m/all.sh'), src('m/suid'), src('m/sgid')],
    opts({ dest: '/shared/' }),
  );
  for (const [rel, mode] of Object.entries(modes)) {
    const st = lstatSync(join(root, 'shared', rel.slice(2)));
    assert.equal(st.mode & 0o7777, mode, `${rel} mode`);
    assert.deepEqual([st.uid, st.gid], [0, 0], `${rel} owner: COPY gives root, not the directory's group`);
  }
  await copyIntoRoot(root, [src('m/open.txt')], opts({ dest: '/chowned/', chown: { uid: 1000, gid: 1000 } }));
  const c = lstatSync(join(root, 'chowned/open.txt'));
  assert.deepEqual([c.uid, c.gid, c.mode & 0o7777], [1000, 1000, 0o666]);
});
