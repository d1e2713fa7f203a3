/**
 * Several users on one machine, and a uid with no passwd entry (OpenShift): the default work dir is
 * per user (`$TMPDIR/kiln-<uid>`, 0700), one that belongs to someone else is an environment error
 * (exit 8) with a hint, and a passwd-less uid probes and builds rootless instead of dying with exit
 * 70 (`uv_os_get_passwd ENOENT`). TMPDIR points at a private 1777 directory so that the machine's
 * /tmp is never touched.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { ensureUser, kilnAs } from '../helpers/runner-env.ts';

const isRoot = process.getuid?.() === 0;
const USER = 'kilntest';
const NO_PASSWD_UID = 23456;

let work: string;
let uid: number;
let reg: TestRegistry | undefined;

/** A fresh shared temporary directory (like /tmp: 1777) for one test. */
async function sharedTmp(name: string): Promise<string> {
  const d = join(work, name);
  await mkdir(d);
  await chmod(d, 0o1777);
  return d;
}

describe('per-user work dir and passwd-less uids', { skip: !isRoot && 'needs root (switches users)' }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-users-'));
    await chmod(work, 0o755);
    uid = await ensureUser(USER, '200000:65536');
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('root then another user: each gets its own 0700 default work dir', async () => {
    const tmp = await sharedTmp('two-users');
    const asRoot = await kilnAs(['probe'], undefined, { TMPDIR: tmp });
    assert.equal(asRoot.code, 0, asRoot.stderr);
    const asUser = await kilnAs(['probe'], { user: USER }, { TMPDIR: tmp });
    assert.equal(asUser.code, 0, asUser.stderr);
    assert.match(asUser.stdout, /^\* rootless ok/m);
    for (const [who, id] of [
      ['root', 0],
      [USER, uid],
    ] as const) {
      const st = await stat(join(tmp, `kiln-${id}`));
      assert.equal(st.uid, id, `owner of ${who}'s work dir`);
      assert.equal(st.mode & 0o777, 0o700, `mode of ${who}'s work dir`);
    }
  });

  test('a default work dir that belongs to someone else: exit 8 with a hint, never 70', async () => {
    const tmp = await sharedTmp('foreign');
    await mkdir(join(tmp, `kiln-${uid}`), { mode: 0o777 });
    const r = await kilnAs(['probe'], { user: USER }, { TMPDIR: tmp });
    assert.equal(r.code, 8, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`work directory .*kiln-${uid} belongs to uid 0, not to uid ${uid}`));
    assert.match(r.stderr, /hint: pass --work-dir/);
  });

  test('an explicit work dir this user cannot write: exit 8, never 70', async () => {
    const dir = join(work, 'root-only');
    await mkdir(dir, { mode: 0o755 });
    const r = await kilnAs(['probe', '--work-dir', join(dir, 'sub')], { user: USER });
    assert.equal(r.code, 8, r.stdout + r.stderr);
    assert.match(r.stderr, /cannot create the work directory .*EACCES/);
  });

  test(
    'a uid with no passwd entry probes and builds rootless (single-id map)',
    { timeout: 120_000 },
    async () => {
      reg = await startRegistry();
      await pushBusyboxImage(reg, 'base/busybox', '1');
      const tmp = await sharedTmp('no-passwd');
      const ctx = join(work, 'ctx-no-passwd');
      await mkdir(ctx);
      await writeFile(
        join(ctx, 'Dockerfile'),
        `FROM ${reg.host}/base/busybox:1\nRUN echo hi > /f && id -u > /id\n`,
      );
      await chown(ctx, NO_PASSWD_UID, NO_PASSWD_UID);
      const env = { TMPDIR: tmp, HOME: tmp };
      const probe = await kilnAs(['probe'], { uid: NO_PASSWD_UID }, env);
      assert.equal(probe.code, 0, probe.stderr);
      assert.match(probe.stdout, /^\* rootless ok +running as root of a user namespace with 1 mapped ids/m);
      const dest = `${reg.host}/out/no-passwd:1`;
      const build = await kilnAs(
        ['build', '-c', ctx, '-d', dest, '--insecure-registry', reg.host],
        { uid: NO_PASSWD_UID },
        env,
      );
      assert.equal(build.code, 0, build.stderr);
      assert.match(build.stdout.trim(), /^sha256:[a-f0-9]{64}$/);
      assert.match(build.stderr, /^isolation: rootless \(/m);
      const st = await stat(join(tmp, `kiln-${NO_PASSWD_UID}`));
      assert.equal(st.uid, NO_PASSWD_UID);
    },
  );
});
