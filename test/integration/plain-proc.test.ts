/**
 * The plain rung's /proc (plain-proot.ts), end to end through the CLI on the debian base: with PRoot,
 * apt-get installs packages with postinst scripts without the "Is /dev/pts mounted?" warning (its
 * _apt user's gpgv exec included), procps' ps and free, readlink /proc/self/exe, python3
 * multiprocessing and a USER step work; with KILN_PLAIN_PROC=none (the bare chroot) /proc is
 * missing, as the probe line says. Each RUN checks its own evidence and fails the build if it is wrong.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prootUnavailable } from '../../src/isolation/plain-proot.ts';
import { kiln } from '../helpers/cli.ts';
import { pushDebianImage } from '../helpers/debian.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';

const isRoot = process.getuid?.() === 0;
const why = !isRoot ? 'needs root (plain rung)' : prootUnavailable();

const WITH_PROC = (base: string) => `FROM ${base}
RUN apt-get update > /tmp/apt.log 2>&1 \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends procps python3 >> /tmp/apt.log 2>&1 \\
 || { cat /tmp/apt.log; exit 1; }; \\
 if grep -i 'dev/pts' /tmp/apt.log; then echo 'apt warned about /dev/pts'; exit 1; fi; rm /tmp/apt.log
RUN test "$(readlink /proc/self/exe)" = /usr/bin/readlink \\
 && ps -eo pid,comm | grep -q ' ps$' && free -m | grep -q '^Mem:' \\
 && python3 -c 'import multiprocessing as m; assert m.Pool(2).map(abs, [-1, -2]) == [1, 2]'
RUN useradd -m app && mkdir /app && chown -R app /app
USER app
RUN test "$(id -un)" = app && readlink /proc/self/exe > /app/exe && test "$(cat /app/exe)" = /usr/bin/readlink
`;

const WITHOUT_PROC = (base: string) => `FROM ${base}
RUN test ! -e /proc/self/exe && test -d /dev/shm && echo no-proc
`;

describe('plain rung /proc', { skip: why || undefined, timeout: 10 * 60_000 }, () => {
  let reg: TestRegistry;
  let work: string;
  let base: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-plain-proc-'));
    // USER steps under PRoot reach the root with their own uid: the work dir's parents must be enterable.
    await chmod(work, 0o755);
    reg = await startRegistry();
    await pushDebianImage(reg, 'base/debian', 'bookworm');
    base = `${reg.host}/base/debian:bookworm`;
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const build = async (name: string, dockerfile: string, env: Record<string, string>) => {
    const ctx = join(work, name);
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, 'Dockerfile'), dockerfile);
    return kiln(
      [
        'build',
        '-c',
        ctx,
        '--no-push',
        '--isolation',
        'plain',
        '--insecure-registry',
        reg.host,
        '--work-dir',
        `${ctx}-work`,
      ],
      env,
    );
  };

  test('PRoot: apt-get, ps, free, readlink /proc/self/exe, multiprocessing, a USER step', async () => {
    const r = await build('proot', WITH_PROC(base), { KILN_PLAIN_PROC: 'auto' });
    assert.equal(r.code, 0, r.stderr.slice(-4000));
    assert.match(r.stderr, /^isolation: plain \(.*\/proc, \/dev\/pts bound by PRoot/m);
  });

  test('KILN_PLAIN_PROC=none: the bare chroot, said so, and no /proc in RUN', async () => {
    const r = await build('none', WITHOUT_PROC(base), { KILN_PLAIN_PROC: 'none' });
    assert.equal(r.code, 0, r.stderr.slice(-4000));
    assert.match(r.stderr, /^isolation: plain \(.*no \/proc \(bare chroot\): KILN_PLAIN_PROC=none/m);
  });
});
