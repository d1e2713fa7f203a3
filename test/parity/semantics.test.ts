/**
 * BuildKit's Dockerfile semantics where kiln once differed (issue 15), each proved on a real kiln
 * build (the CLI, a busybox base from a test registry, the image unpacked with skopeo + umoci): the
 * result BuildKit gives, with the BuildKit source each expectation comes from. Unit tables for the
 * same rules live next to the parsers (test/unit/dockerfile/buildkit-rules.test.ts and friends).
 *
 * Needs root, skopeo, umoci and docker-registry; skipped otherwise.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { kilnBuild, unpack, type Env, type Unpacked } from './harness.ts';

const tools = ['/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry'];
const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : tools.find((t) => !existsSync(t))
      ? `missing ${tools.find((t) => !existsSync(t))}`
      : false;

let registry: TestRegistry;
let env: Env;
let n = 0;

/**
 * Rows whose build succeeded before the fix (only the result was wrong) share one build per base,
 * to keep the suite short; rows that used to fail the whole build get a build of their own.
 */
let scratchShared: Promise<Unpacked> | undefined;
let busyboxShared: Promise<Unpacked> | undefined;
const sharedScratch = (): Promise<Unpacked> =>
  (scratchShared ??= build(
    'FROM scratch\nCOPY d/ /sys/fs/\nCOPY d/ /proc/x/\nCOPY d/ /dev/x/\n' +
      'ENV X=val\nCOPY <<EOF /heredoc\na=$X\nb=\\$X\nc=\\${X}\nq="$X"\nEOF\n' +
      'COPY --chmod=0750 f /dest/sub/f\nCOPY --chmod=go-w f /sym/f\n',
    { 'd/f': 'data\n', f: 'x' },
  ));
const sharedBusybox = (): Promise<Unpacked> =>
  (busyboxShared ??= build(
    'FROM @BASE@ AS first\nFROM @BASE@ AS final\n' +
      'ENV TOKEN=from-env\nRUN --mount=type=secret,id=tok,env=TOKEN echo "$TOKEN" | tr a-z A-Z >/secret-env\n' +
      'RUN --mount=type=cache,target=/c/ touch /c/x\n' +
      'RUN --mount=type=cache,target=/c (test -f /c/x && echo shared || echo separate) >/cache-shared\n' +
      'RUN --mount=type=cache,target=/c,uid=1000,gid=1000,mode=0700 (ls -a /c | tr "\\n" " "; stat -c "%u:%g %a" /c) >/cache-owned\n' +
      'ARG TARGETSTAGE\nRUN echo "$TARGETSTAGE" >/stage\n',
    {},
    async (ctx) => {
      const f = join(dirname(ctx), 'tok');
      await writeFile(f, 'from-secret');
      return ['--secret', `id=tok,src=${f}`, '--cache-dir', join(dirname(ctx), 'cache')];
    },
  ));

/** Builds `dockerfile` with `files` as its context; returns the unpacked image, or the failed build's stderr. */
async function build(
  dockerfile: string,
  files: Record<string, string> = {},
  extra: (ctx: string) => Promise<string[]> | string[] = () => [],
): Promise<Unpacked> {
  const name = `sem-${++n}`;
  const ctx = join(env.work, name, 'ctx');
  await mkdir(ctx, { recursive: true });
  await writeFile(
    join(ctx, 'Dockerfile'),
    dockerfile.replaceAll('@BASE@', `${env.registry}/base/busybox:latest`),
  );
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(ctx, p)), { recursive: true });
    await writeFile(join(ctx, p), content);
  }
  const r = await kilnBuild(env, ctx, 'Dockerfile', `kiln/${name}:latest`, await extra(ctx));
  assert.equal(r.code, 0, `kiln build failed:\n${r.stderr.slice(-2000)}`);
  return unpack(env, name, 'kiln');
}

const read = (img: Unpacked, p: string): Promise<string> => readFile(join(img.rootfs, p), 'utf8');
async function owner(img: Unpacked, p: string): Promise<string> {
  const st = await lstat(join(img.rootfs, p));
  return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
}

describe('BuildKit Dockerfile semantics on real builds', { skip, concurrency: 1 }, () => {
  before(async () => {
    registry = await startRegistry();
    await pushBusyboxImage(registry, 'base/busybox', 'latest');
    const work = await mkdtemp(join(tmpdir(), 'kiln-semantics-'));
    env = { registry: registry.host, httpUrl: '', work, buildahRoot: '', buildahRunRoot: '' };
  });
  after(async () => {
    await registry?.stop();
    if (env) await rm(env.work, { recursive: true, force: true });
  });

  // fsutil copy (ResolveWildcards, then one Copy per match): one match copies to the name.
  test('a wildcard matching one file copies it to a destination without a trailing slash', async () => {
    const img = await build('FROM scratch\nCOPY fo? /foo2\nCOPY ignore/* /only\n', {
      foo: 'foo\n',
      'ignore/keep.txt': 'kept\n',
      'ignore/drop.txt': 'dropped\n',
      '.dockerignore': 'ignore/drop.txt\n',
    });
    assert.equal(await read(img, 'foo2'), 'foo\n');
    assert.equal(await read(img, 'only'), 'kept\n');
  });

  // dockerfile2llb/convert_copy.go: AllowEmptyWildcard for every context source.
  test('a wildcard matching nothing copies nothing and the other sources still land', async () => {
    const img = await build('FROM scratch\nCOPY package.json yarn.lock* /app/\n', { 'package.json': '{}\n' });
    assert.equal(await read(img, 'app/package.json'), '{}\n');
    assert.equal(existsSync(join(img.rootfs, 'app/yarn.lock')), false);
  });

  // solver/llbsolver/ops/exec.go: secret env is appended after the config's Env.
  test('a secret mounted as env wins over an ENV of the same name', async () => {
    assert.equal(await read(await sharedBusybox(), 'secret-env'), 'FROM-SECRET\n');
  });

  // convert_runmount.go: CacheID defaults to path.Clean(target).
  test('cache mounts on /c/ and /c are one cache', async () => {
    assert.equal(await read(await sharedBusybox(), 'cache-shared'), 'shared\n');
  });

  // convert_runmount.go setCacheUIDGID + mounts/mount.go getRefCacheDir (key = id + base ref).
  test('a cache mount with uid, gid and mode is another cache, created with them', async () => {
    assert.equal(await read(await sharedBusybox(), 'cache-owned'), '. .. 1000:1000 700\n');
  });

  // File ops write into the snapshot; only RUN mounts proc/sys/dev over those paths.
  test('COPY into /sys, /proc and /dev keeps the files in the layer', async () => {
    const img = await sharedScratch();
    for (const p of ['sys/fs/f', 'proc/x/f', 'dev/x/f']) assert.equal(await read(img, p), 'data\n', p);
  });

  // convert.go ExpandRaw: NewLex('\\') with SkipProcessQuotes for COPY heredoc bodies.
  test('an escaped $ in an expanded COPY heredoc stays a literal $', async () => {
    assert.equal(await read(await sharedScratch(), 'heredoc'), 'a=val\nb=$X\nc=${X}\nq="val"\n');
  });

  // convert_copy.go: a --chmod that is not octal is a dchapes-mode symbolic mode.
  test('--chmod=go=u gives group and others the owner permissions', async () => {
    const img = await build('FROM scratch\nCOPY --chmod=go=u f /f\nCOPY --chmod=u=rwx,go=u-w f /g\n', {
      f: 'x',
    });
    assert.equal((await owner(img, 'f')).split(' ')[1], '666');
    assert.equal((await owner(img, 'g')).split(' ')[1], '755');
  });

  // fsutil copy.Copy: MkdirAll(ensureDstPath, CopyInfo.Mode) for the implicit parents.
  test('an octal --chmod is the mode of the directories COPY has to create', async () => {
    const img = await sharedScratch();
    assert.equal(await owner(img, 'dest'), '0:0 750');
    assert.equal(await owner(img, 'dest/sub'), '0:0 750');
    assert.equal(await owner(img, 'dest/sub/f'), '0:0 750');
    assert.equal(await owner(img, 'sym'), '0:0 755');
  });

  // client/llb/fileop.go parseUID ("root" is 0) and ops/user_linux.go readUser (no passwd: 0:0).
  test('USER root on an image without /etc/passwd creates WORKDIR as 0:0', async () => {
    // The last USER 0 only lets umoci write a runtime config for a scratch image.
    const img = await build('FROM scratch\nUSER root\nWORKDIR /app\nCOPY --chown=root:root f /f\nUSER 0\n', {
      f: 'x',
    });
    assert.equal(await owner(img, 'app'), '0:0 755');
    assert.equal((await owner(img, 'f')).split(' ')[0], '0:0');
  });

  // ops/user_linux.go readUser: UserOpt_ByID sets uid and gid to the number.
  test('a numeric USER without a passwd entry owns the WORKDIR it creates as uid:uid', async () => {
    const img = await build('FROM scratch\nUSER 9999\nWORKDIR /app/sub\n');
    assert.equal(await owner(img, 'app'), '9999:9999 755');
    assert.equal(await owner(img, 'app/sub'), '9999:9999 755');
  });

  // dockerfile2llb/platform.go defaultArgs: TARGETSTAGE (dockerfile 1.11).
  test('ARG TARGETSTAGE is the name of the stage being built', async () => {
    assert.equal(await read(await sharedBusybox(), 'stage'), 'final\n');
  });
});
