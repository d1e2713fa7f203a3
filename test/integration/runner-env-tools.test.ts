/**
 * Missing host tools: the probe checks what the chosen path needs and `auto` falls back or fails
 * before the build starts. getfattr/setfattr are hidden in a private mount namespace (/dev/null bound
 * over them, as on a machine without Debian's `attr`), or left out of PATH only (the trial RUN's
 * overlay snapshot then fails and the probe takes walk); zstd is hidden the same way.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, type CliResult } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';

const isRoot = process.getuid?.() === 0;
const MAIN = join(REPO, 'src/cli/main.ts');

let work: string;
let reg: TestRegistry | undefined;
let ctx: string;

/** kiln with `hide` (absolute paths) replaced by /dev/null in a private mount namespace. */
function kilnHiding(hide: string[], args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const binds = hide.filter((p) => existsSync(p)).map((p) => `mount --bind /dev/null ${p}`);
  const script = [...binds, 'exec "$@"'].join(' && ');
  const childEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', TMPDIR: work, HOME: work, ...env };
  return new Promise((resolve, reject) => {
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        script,
        'sh',
        process.execPath,
        '--import',
        'tsx',
        MAIN,
        ...args,
      ],
      { cwd: REPO, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const XATTR_TOOLS = ['/usr/bin/getfattr', '/usr/bin/setfattr', '/bin/getfattr', '/bin/setfattr'];

describe('missing host tools', { skip: !isRoot && 'needs root (mount namespace)' }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-tools-'));
    reg = await startRegistry();
    await pushBusyboxImage(reg, 'base/busybox', '1');
    ctx = join(work, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${reg.host}/base/busybox:1\nRUN echo hi > /f\n`);
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('no getfattr/setfattr: probe and build take walk snapshots with a one-line warning', async () => {
    const p = await kilnHiding(XATTR_TOOLS, ['probe']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /^snapshots: walk$/m);
    assert.match(
      p.stdout,
      /^snapshots note: overlay snapshots need getfattr, setfattr \(install the attr package\)/m,
    );
    const dest = `${reg!.host}/out/no-attr:1`;
    const b = await kilnHiding(XATTR_TOOLS, [
      'build',
      '-c',
      ctx,
      '-d',
      dest,
      '--insecure-registry',
      reg!.host,
    ]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /^isolation: chroot \(.*; snapshots: walk$/m);
    const warns = b.stderr.split('\n').filter((l) => /WARN overlay snapshots need getfattr/.test(l));
    assert.equal(warns.length, 1, b.stderr);
  });

  test('no getfattr/setfattr with KILN_SNAPSHOT_ENGINE=overlay: exit 8 before the build, naming the package', async () => {
    const dest = `${reg!.host}/out/no-attr:2`;
    const b = await kilnHiding(
      XATTR_TOOLS,
      ['build', '-c', ctx, '-d', dest, '--insecure-registry', reg!.host],
      {
        KILN_SNAPSHOT_ENGINE: 'overlay',
      },
    );
    assert.equal(b.code, 8, b.stderr);
    assert.match(b.stderr, /getfattr, setfattr not installed/);
    assert.match(b.stderr, /hint: install the attr package \(apt-get install attr\)/);
    assert.doesNotMatch(b.stderr, /^isolation: /m, 'failed before the build started');
  });

  test('getfattr only missing from PATH: the trial RUN catches it and the build takes walk', async () => {
    // A PATH of links to every system tool but the attr ones (the system dirs themselves still hold them).
    const bin = join(work, 'bin-no-attr');
    await mkdir(bin);
    for (const d of ['/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
      if (!existsSync(d) || (await lstat(d)).isSymbolicLink()) continue;
      for (const name of readdirSync(d)) {
        if (/^[gs]etfattr$/.test(name) || existsSync(join(bin, name))) continue;
        await symlink(join(d, name), join(bin, name));
      }
    }
    const dest = `${reg!.host}/out/no-attr:3`;
    const b = await kilnHiding([], ['build', '-c', ctx, '-d', dest, '--insecure-registry', reg!.host], {
      PATH: bin,
    });
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /^isolation: chroot \(.*; snapshots: walk$/m);
    assert.match(b.stderr, /WARN overlay snapshots failed \(a trial RUN failed: .*getfattr/);
  });

  test('--compression zstd without zstd: exit 8 before the build, naming the package', async () => {
    const hide = ['/usr/bin/zstd', '/bin/zstd'];
    const dest = `${reg!.host}/out/no-zstd:1`;
    const b = await kilnHiding(hide, [
      'build',
      '-c',
      ctx,
      '-d',
      dest,
      '--insecure-registry',
      reg!.host,
      '--compression',
      'zstd',
    ]);
    assert.equal(b.code, 8, b.stderr);
    assert.match(b.stderr, /zstd layers need the zstd program/);
    assert.match(b.stderr, /hint: install the zstd package \(apt-get install zstd\)/);
  });

  test('a sandbox set-up step the cheap checks do not cover fails the trial RUN: auto takes the next rung', async () => {
    // mount refuses to bind /dev/null: namespaces and overlayfs work, the RUN sandbox's /dev does not.
    const bin = join(work, 'bin-bad-mount');
    await mkdir(bin);
    const real = existsSync('/usr/bin/mount') ? '/usr/bin/mount' : '/bin/mount';
    await writeFile(
      join(bin, 'mount'),
      `#!/bin/sh\nfor a; do [ "$a" = /dev/null ] && { echo "mount: /dev/null: permission denied" >&2; exit 32; }; done\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    const env = { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    const p = await kilnHiding([], ['probe'], env);
    assert.equal(p.code, 0, p.stderr);
    assert.match(
      p.stdout,
      /^ {2}chroot +FAIL .*but a trial RUN failed: mount: \/dev\/null: permission denied/m,
    );
    assert.match(p.stdout, /^auto: plain$/m);
    const dest = `${reg!.host}/out/bad-mount:1`;
    const b = await kilnHiding([], ['build', '-c', ctx, '-d', dest, '--insecure-registry', reg!.host], env);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /^isolation: plain \(/m);
  });
});
