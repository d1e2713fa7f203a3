import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { kiln } from '../helpers/cli.ts';

let reg: TestRegistry;
let dir: string;

function git(cwd: string, ...args: string[]): void {
  const r = spawnSync('git', ['-c', 'user.email=t@example.com', '-c', 'user.name=t', ...args], {
    cwd,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
}

before(async () => {
  reg = await startRegistry({ auth: 'none' });
  await pushBusyboxImage(reg, 'base/busybox', 'latest');
  dir = mkdtempSync(join(tmpdir(), 'kiln-add-git-'));
  const repo = join(dir, 'repo.git');
  mkdirSync(join(repo, 'sub'), { recursive: true });
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'sub', 'file.txt'), 'v1\n');
  writeFileSync(join(repo, 'top.txt'), 'top\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '-qm', 'one');
  git(repo, 'tag', 'v1');
  writeFileSync(join(repo, 'sub', 'file.txt'), 'v2\n');
  git(repo, 'commit', '-qam', 'two');
});

after(async () => {
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function build(dockerfile: string): Promise<{ status: number | null; stderr: string }> {
  const ctx = mkdtempSync(join(dir, 'ctx-'));
  writeFileSync(join(ctx, 'Dockerfile'), dockerfile);
  const r = await kiln([
    'build',
    '-c',
    ctx,
    '--no-push',
    '--insecure-registry',
    reg.host,
    '--isolation',
    'chroot',
  ]);
  return { status: r.code, stderr: r.stderr };
}

test('ADD <git URL>#ref:subdir copies that tree, without .git unless --keep-git-dir', async () => {
  const url = `file://${join(dir, 'repo.git')}`;
  const r = await build(
    [
      `FROM ${reg.host}/base/busybox:latest`,
      `ADD ${url}#v1:sub /old/`,
      `ADD ${url}#main /new/`,
      `ADD --keep-git-dir=true ${url}#main /withgit/`,
      'RUN test "$(cat /old/file.txt)" = v1 && test "$(cat /new/sub/file.txt)" = v2 && test -f /new/top.txt && test ! -e /new/.git && test -d /withgit/.git',
    ].join('\n'),
  );
  assert.equal(r.status, 0, r.stderr);
});

test('ADD of a git ref that does not exist fails with the URL and no credentials', async () => {
  const r = await build(
    [`FROM ${reg.host}/base/busybox:latest`, `ADD file://${join(dir, 'repo.git')}#nope /x/`].join('\n'),
  );
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /repo\.git/);
});
