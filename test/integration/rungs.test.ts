/**
 * Every isolation rung this machine offers, end to end through the real CLI entry: build an image with
 * RUN steps, push it to a test registry, `skopeo copy` it into an OCI layout, `umoci unpack` it and
 * check the tree (RUN output, owners after chown, setuid, symlinks, hardlinks, whiteouts, and no
 * /etc/hosts or /etc/resolv.conf stubs left by kiln). Rootless builds run as unprivileged users with
 * and without a subordinate id range.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { probeIsolation } from '../../src/isolation/probe.ts';
import type { ProbeResult } from '../../src/isolation/types.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { kiln as runKiln, type CliResult } from '../helpers/cli.ts';
import { ensureUser } from '../helpers/runner-env.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const haveTools = ['skopeo', 'umoci', 'runuser', 'useradd'].every((t) =>
  ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, t))),
);
const skip = !isRoot
  ? 'needs root (creates test users, runs every rung)'
  : !haveTools && 'needs skopeo, umoci, runuser';

const FULL_USER = 'kilntest';
const SINGLE_USER = 'kilntest2';

interface KilnRun {
  /** Run as this user through runuser (the build re-execs itself into a user namespace). */
  user?: string;
  env?: Record<string, string>;
}

/** Runs the real CLI entry in a child process. */
function kiln(args: string[], o: KilnRun = {}): Promise<CliResult> {
  return runKiln(args, o.env ?? {}, o.user ? { user: o.user } : {});
}

async function uidOf(name: string): Promise<number> {
  return Number((await execFileP('id', ['-u', name])).stdout.trim());
}

const DOCKERFILE = (base: string) => `FROM ${base}
RUN mkdir -p /data && echo hello > /data/hello.txt && chown 1000:1000 /data /data/hello.txt \\
 && cp /bin/busybox /data/suid && chmod 4755 /data/suid \\
 && ln -s hello.txt /data/link && ln /data/hello.txt /data/hard && echo lower > /data/gone
RUN rm /etc/group /data/gone && echo two > /data/two && cat /etc/hosts > /data/hosts-seen
`;

let work: string;
let reg: TestRegistry | undefined;
let base: string;
let probe: ProbeResult | undefined;
let fakeBin: string;

/** A directory tree for one build: context (with the Dockerfile), work dir and HOME, owned by `owner`. */
async function buildDirs(
  name: string,
  dockerfile: string,
  owner?: string,
): Promise<{ ctx: string; workDir: string; home: string }> {
  const dir = join(work, name);
  const ctx = join(dir, 'ctx');
  const workDir = join(dir, 'work');
  const home = join(dir, 'home');
  for (const d of [ctx, workDir, home]) await mkdir(d, { recursive: true });
  await writeFile(join(ctx, 'Dockerfile'), dockerfile);
  if (owner) {
    const uid = await uidOf(owner);
    const gid = Number((await execFileP('id', ['-g', owner])).stdout.trim());
    for (const p of [dir, ctx, workDir, home, join(ctx, 'Dockerfile')]) await chown(p, uid, gid);
  }
  return { ctx, workDir, home };
}

/** Copies the pushed image into an OCI layout, unpacks it with umoci and returns the rootfs. */
async function unpack(ref: string, name: string): Promise<string> {
  const layout = join(work, `layout-${name}`);
  const bundle = join(work, `bundle-${name}`);
  await execFileP(
    'skopeo',
    ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:img`],
    {
      maxBuffer: 64 << 20,
    },
  );
  await execFileP('umoci', ['unpack', '--image', `${layout}:img`, bundle], { maxBuffer: 64 << 20 });
  return join(bundle, 'rootfs');
}

async function absent(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return false;
  } catch {
    return true;
  }
}

/** The checks every rung's image must pass. */
async function checkTree(rootfs: string): Promise<void> {
  const f = (p: string) => join(rootfs, p);
  assert.equal(await readFile(f('data/hello.txt'), 'utf8'), 'hello\n');
  assert.equal(await readFile(f('data/two'), 'utf8'), 'two\n');
  // The RUN saw a generated /etc/hosts…
  assert.match(await readFile(f('data/hosts-seen'), 'utf8'), /localhost/);
  for (const p of ['data', 'data/hello.txt']) {
    const st = await lstat(f(p));
    assert.equal(`${st.uid}:${st.gid}`, '1000:1000', `owner of /${p}`);
  }
  const suid = await lstat(f('data/suid'));
  assert.equal(suid.mode & 0o7777, 0o4755, 'setuid mode kept');
  assert.equal(`${suid.uid}:${suid.gid}`, '0:0');
  assert.ok((await lstat(f('data/link'))).isSymbolicLink());
  assert.equal(await readlink(f('data/link')), 'hello.txt');
  const [a, b] = [await lstat(f('data/hello.txt')), await lstat(f('data/hard'))];
  assert.equal(a.ino, b.ino, '/data/hard is a hardlink of /data/hello.txt');
  assert.equal(a.nlink, 2);
  // Whiteouts: deleted in the second RUN, from the base layer and from the first RUN's layer.
  assert.ok(await absent(f('etc/group')), '/etc/group was deleted (whiteout)');
  assert.ok(await absent(f('data/gone')), '/data/gone was deleted (whiteout)');
  assert.ok(!(await absent(f('etc/passwd'))), '/etc/passwd from the base is still there');
  assert.ok(!(await absent(f('bin/sh'))));
  // …but kiln never leaves its stubs behind.
  for (const p of ['etc/hosts', 'etc/resolv.conf', 'etc/hostname', 'proc', 'sys', 'dev']) {
    assert.ok(await absent(f(p)), `/${p} must not be added by kiln`);
  }
}

function rungAvailable(rung: string): boolean {
  return Boolean(probe?.reports.find((r) => r.rung === rung)?.ok);
}

before(async () => {
  if (skip) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-rungs-'));
  await chmod(work, 0o755);
  await ensureUser(FULL_USER, '200000:65536');
  await ensureUser(SINGLE_USER, undefined);
  probe = await probeIsolation({ want: 'auto', workDir: join(work, 'probe') });
  reg = await startRegistry();
  await pushBusyboxImage(reg, 'base/busybox', '1');
  base = `${reg.host}/base/busybox:1`;
  fakeBin = join(work, 'fakebin');
  await mkdir(fakeBin);
  await writeFile(
    join(fakeBin, 'unshare'),
    '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n',
    { mode: 0o755 },
  );
});

after(async () => {
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface RungCase {
  name: string;
  isolation: string;
  expectRung: string;
  user?: string;
  env?: () => Record<string, string>;
  needs: string;
}

const cases: RungCase[] = [
  { name: 'chroot as root', isolation: 'chroot', expectRung: 'chroot', needs: 'chroot' },
  { name: 'plain forced', isolation: 'plain', expectRung: 'plain', needs: 'plain' },
  {
    name: 'auto falls to plain when unshare fails',
    isolation: 'auto',
    expectRung: 'plain',
    env: () => ({ PATH: `${fakeBin}:${process.env.PATH ?? '/usr/bin:/bin'}` }),
    needs: 'plain',
  },
  {
    name: 'rootless with a subuid range',
    isolation: 'rootless',
    expectRung: 'rootless',
    user: FULL_USER,
    needs: 'rootless',
  },
];

describe('kiln build on every rung', { skip }, () => {
  for (const c of cases) {
    test(c.name, { timeout: 180_000 }, async (t) => {
      if (!rungAvailable(c.needs)) return t.skip(`${c.needs} is not available here`);
      const slug = c.name.replace(/\W+/g, '-');
      const dirs = await buildDirs(slug, DOCKERFILE(base), c.user);
      const dest = `${reg!.host}/out/${slug}:1`;
      const r = await kiln(
        [
          'build',
          '-c',
          dirs.ctx,
          '-d',
          dest,
          '--insecure-registry',
          reg!.host,
          '--isolation',
          c.isolation,
          '--work-dir',
          dirs.workDir,
        ],
        { ...(c.user ? { user: c.user } : {}), env: { HOME: dirs.home, ...(c.env?.() ?? {}) } },
      );
      assert.equal(r.code, 0, `kiln failed:\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^isolation: ${c.expectRung} \\(`, 'm'), r.stderr);
      if (c.user) assert.match(r.stderr, /65536 mapped ids/);
      assert.match(r.stdout.trim(), /^sha256:[a-f0-9]{64}$/);
      await checkTree(await unpack(dest, slug));
    });
  }

  test(
    'rootless with a single-id map: builds without chown, explains a chown failure',
    { timeout: 180_000 },
    async (t) => {
      if (!rungAvailable('rootless')) return t.skip('rootless is not available here');
      const ok = await buildDirs(
        'single-ok',
        `FROM ${base}\nRUN echo hi > /f && chmod 4755 /f && ln -s f /l && rm /etc/group\n`,
        SINGLE_USER,
      );
      const dest = `${reg!.host}/out/single:1`;
      const common = ['--insecure-registry', reg!.host, '--isolation', 'rootless'];
      const r = await kiln(['build', '-c', ok.ctx, '-d', dest, ...common, '--work-dir', ok.workDir], {
        user: SINGLE_USER,
        env: { HOME: ok.home },
      });
      assert.equal(r.code, 0, `kiln failed:\n${r.stderr}`);
      assert.match(r.stderr, /^isolation: rootless \(.*with 1 mapped ids/m);
      assert.match(
        r.stderr,
        /WARN only one user id is mapped \(no \/etc\/subuid range for kilntest2\): .*chown to other ids fails; add a range \(usermod --add-subuids/,
      );
      const rootfs = await unpack(dest, 'single');
      const st = await lstat(join(rootfs, 'f'));
      assert.equal(st.mode & 0o7777, 0o4755);
      assert.equal(`${st.uid}:${st.gid}`, '0:0', 'the only mapped id is root of the namespace');
      assert.equal(await readlink(join(rootfs, 'l')), 'f');
      assert.ok(await absent(join(rootfs, 'etc/group')));
      assert.ok(await absent(join(rootfs, 'etc/hosts')));

      const bad = await buildDirs(
        'single-chown',
        `FROM ${base}\nRUN echo hi > /f && chown 1000 /f\n`,
        SINGLE_USER,
      );
      const r2 = await kiln(
        ['build', '-c', bad.ctx, '-d', `${reg!.host}/out/single:2`, ...common, '--work-dir', bad.workDir],
        { user: SINGLE_USER, env: { HOME: bad.home } },
      );
      assert.equal(r2.code, 7, r2.stderr);
      assert.match(r2.stderr, /error: .*Dockerfile:2: RUN .*chown 1000 \/f failed with exit code 1/);
      assert.match(r2.stderr, /chown: \/f: Invalid argument/);
      assert.match(
        r2.stderr,
        new RegExp(
          `only 1 user id\\(s\\) are mapped.*usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${SINGLE_USER}`,
        ),
      );
    },
  );
});

describe('kiln probe', { skip }, () => {
  test('as root: every rung, auto takes chroot, snapshot engine named', async () => {
    const r = await kiln(['probe', '--work-dir', join(work, 'probe-cli')]);
    assert.equal(r.code, 0, r.stderr);
    for (const rung of ['chroot', 'rootless', 'plain'])
      assert.match(r.stdout, new RegExp(`^[ *] ${rung} +(ok|FAIL) `, 'm'));
    assert.match(r.stdout, new RegExp(`^auto: ${probe!.chosen}$`, 'm'));
    assert.match(r.stdout, /^snapshots: (overlay|walk)$/m);
  });

  test('an unavailable wanted rung exits 6 with the reason', async () => {
    const dirs = await buildDirs('probe-user', 'FROM scratch\n', FULL_USER);
    const r = await kiln(['probe', '--isolation', 'chroot', '--work-dir', dirs.workDir], {
      user: FULL_USER,
      env: { HOME: dirs.home },
    });
    assert.equal(r.code, 6, r.stdout + r.stderr);
    assert.match(r.stderr, /isolation 'chroot' is not available: needs root/);
  });

  test('with a failing unshare, auto falls to plain', async () => {
    const r = await kiln(['probe', '--work-dir', join(work, 'probe-cli2')], {
      env: { PATH: `${fakeBin}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}chroot +FAIL .*Operation not permitted/m);
    assert.match(r.stdout, /^auto: plain$/m);
  });
});
