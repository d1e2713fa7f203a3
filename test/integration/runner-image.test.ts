/**
 * The GitLab runner image (gitlab/Dockerfile) built by kiln itself, offline: the base is the local
 * debootstrapped bookworm image, NODE_IMAGE is that base plus the host's node binary (also built by
 * kiln), apt-get reaches the machine's Debian mirror. The result is unpacked with skopeo + umoci and
 * `kiln --version` / `kiln probe` run in its rootfs as the image's `kiln` user (chroot in a private
 * mount and pid namespace, so /proc and /dev go away with it).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { pushDebianImage } from '../helpers/debian.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = join(ROOT, 'test', 'integration', 'fixtures', 'runner-image');
const isRoot = process.getuid?.() === 0;
const PKG = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? ROOT,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-200_000)));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

async function ok(cmd: string, args: string[], timeoutMs?: number): Promise<Result> {
  const r = await run(cmd, args, timeoutMs === undefined ? {} : { timeoutMs });
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  return r;
}

function kiln(args: string[], timeoutMs: number): Promise<Result> {
  return run(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
    timeoutMs,
  });
}

interface ImageConfig {
  config: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
  };
}

describe(
  'GitLab runner image built by kiln',
  { skip: !isRoot && 'needs root (chroot)', timeout: 8 * 60_000 },
  () => {
    let reg: TestRegistry;
    let work: string;
    let rootfs: string;
    let config: ImageConfig;
    let imagePath: string;

    /** Runs argv in the unpacked rootfs as uid/gid 1001 (the image's `kiln` user) with the image's env. */
    function inImage(argv: string[], user = '1001:1001'): Promise<Result> {
      const script =
        'set -e; R=$1; U=$2; shift 2; mount -t proc proc "$R/proc"; mount --rbind /dev "$R/dev"; ' +
        'exec chroot --userspec="$U" "$R" "$@"';
      return run(
        'unshare',
        [
          '--mount',
          '--pid',
          '--fork',
          '--propagation',
          'private',
          '--',
          'sh',
          '-c',
          script,
          'sh',
          rootfs,
          user,
          ...argv,
        ],
        {
          env: { PATH: imagePath, HOME: '/home/kiln', KILN_HOME: '/opt/kiln', LANG: 'C.UTF-8' },
          cwd: '/',
          timeoutMs: 60_000,
        },
      );
    }

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'kiln-runner-image-'));
      await chmod(work, 0o755);
      reg = await startRegistry();
      await pushDebianImage(reg, 'base/debian', 'bookworm');
      const base = `${reg.host}/base/debian:bookworm`;

      // NODE_IMAGE: the debian base plus this host's node binary (bookworm's nodejs is v18).
      const nodeCtx = join(work, 'node-ctx');
      await mkdir(nodeCtx);
      await copyFile(process.execPath, join(nodeCtx, 'node'));
      await chmod(join(nodeCtx, 'node'), 0o755);
      const nodeImage = `${reg.host}/local/node:20`;
      const n = await kiln(
        [
          'build',
          '-c',
          nodeCtx,
          '-f',
          join(FIXTURES, 'node.Dockerfile'),
          '-d',
          nodeImage,
          '--insecure-registry',
          reg.host,
          '--build-arg',
          `BASE=${base}`,
          '--work-dir',
          join(work, 'w-node'),
        ],
        120_000,
      );
      assert.equal(n.code, 0, n.stderr);

      // The runner image's context: the repository layout the Dockerfile expects (dist/ + gitlab/).
      const ctx = join(work, 'ctx');
      await mkdir(join(ctx, 'gitlab'), { recursive: true });
      await ok(process.execPath, [join(ROOT, 'scripts', 'bundle.mjs'), join(ctx, 'dist')]);
      await copyFile(join(ROOT, 'gitlab', 'Dockerfile'), join(ctx, 'gitlab', 'Dockerfile'));
      const runner = `${reg.host}/kiln/runner:test`;
      const b = await kiln(
        [
          'build',
          '-c',
          ctx,
          '-f',
          join(ctx, 'gitlab', 'Dockerfile'),
          '-d',
          runner,
          '--insecure-registry',
          reg.host,
          '--build-arg',
          `BASE=${base}`,
          '--build-arg',
          `NODE_IMAGE=${nodeImage}`,
          '--work-dir',
          join(work, 'w-runner'),
        ],
        300_000,
      );
      assert.equal(b.code, 0, b.stderr.slice(-6000));
      assert.match(b.stdout.trim(), /^sha256:[a-f0-9]{64}$/);

      const layout = join(work, 'oci');
      await ok('skopeo', [
        '--insecure-policy',
        'copy',
        '--src-tls-verify=false',
        `docker://${runner}`,
        `oci:${layout}:runner`,
      ]);
      await ok('umoci', ['unpack', '--image', `${layout}:runner`, join(work, 'bundle')]);
      rootfs = join(work, 'bundle', 'rootfs');
      const cfg = await ok('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${runner}`]);
      config = JSON.parse(cfg.stdout) as ImageConfig;
      imagePath = (config.config.Env ?? []).find((e) => e.startsWith('PATH='))?.slice(5) ?? '';
    });

    after(async () => {
      await reg?.stop();
      // unshare's private mount namespace took /proc and /dev with it; nothing is mounted under work.
      if (work) await rm(work, { recursive: true, force: true });
    });

    test('image config: user kiln, no entrypoint (GitLab runs a shell), PATH holds the wrapper', async () => {
      assert.equal(config.config.User, 'kiln');
      assert.equal(config.config.WorkingDir, '/home/kiln');
      assert.ok(!config.config.Entrypoint || config.config.Entrypoint.length === 0, 'no entrypoint');
      assert.deepEqual(config.config.Cmd, ['kiln', '--help']);
      assert.ok(config.config.Env?.includes('KILN_HOME=/opt/kiln'));
      const dirs = imagePath.split(':');
      assert.ok(dirs.includes('/usr/local/bin'), imagePath);
      const wrapper = join(rootfs, 'usr', 'local', 'bin', 'kiln');
      await access(wrapper, constants.X_OK);
      assert.match(await readFile(wrapper, 'utf8'), /^#!\/bin\/sh\nexec node \/opt\/kiln\/cli\.js "\$@"\n$/);
      for (const f of ['cli.js', 'gitlab.js'])
        assert.ok((await stat(join(rootfs, 'opt', 'kiln', f))).size > 0);
    });

    test('kiln user with a subordinate id range, owning /tmp/kiln; util-linux and uidmap installed', async () => {
      const passwd = await readFile(join(rootfs, 'etc', 'passwd'), 'utf8');
      assert.match(passwd, /^kiln:x:1001:1001::\/home\/kiln:\/bin\/sh$/m);
      assert.match(await readFile(join(rootfs, 'etc', 'group'), 'utf8'), /^kiln:x:1001:$/m);
      for (const f of ['subuid', 'subgid']) {
        assert.match(await readFile(join(rootfs, 'etc', f), 'utf8'), /^kiln:100000:65536$/m, f);
      }
      const st = await stat(join(rootfs, 'tmp', 'kiln'));
      assert.deepEqual([st.uid, st.gid], [1001, 1001]);
      for (const bin of [
        'usr/bin/unshare',
        'usr/bin/nsenter',
        'usr/bin/newuidmap',
        'usr/bin/newgidmap',
        'usr/bin/git',
      ]) {
        await access(join(rootfs, bin), constants.X_OK);
      }
      // newuidmap/newgidmap must keep their setuid bit through kiln's layers and umoci.
      for (const bin of ['newuidmap', 'newgidmap']) {
        const st = await stat(join(rootfs, 'usr', 'bin', bin));
        assert.equal(st.uid, 0, bin);
        assert.equal(st.mode & 0o4000, 0o4000, `${bin} is setuid root`);
      }
    });

    test('node inside the image is >= 20 and `kiln --version` prints the package version', async () => {
      const nodeV = await inImage(['node', '--version']);
      assert.equal(nodeV.code, 0, nodeV.stderr);
      assert.ok(Number(/^v(\d+)\./.exec(nodeV.stdout.trim())?.[1]) >= 20, nodeV.stdout);
      const v = await inImage(['kiln', '--version']);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(v.stdout.trim(), PKG.version);
    });

    test('`kiln probe` runs and reports every rung (exit 0, or 6 when none works in a bare chroot)', async (t) => {
      const p = await inImage(['kiln', 'probe']);
      t.diagnostic(`kiln probe (exit ${p.code}):\n${p.stdout}`);
      assert.ok(p.code === 0 || p.code === 6, `exit ${p.code}: ${p.stderr}`);
      const rungs = p.stdout
        .split('\n')
        .map((l) => /^[* ] (\S+)\s+(ok {2}|FAIL) \S/.exec(l)?.[1])
        .filter((r): r is string => r !== undefined)
        .sort();
      assert.deepEqual(rungs, ['chroot', 'plain', 'rootless'], p.stdout);
      assert.match(p.stdout, /^auto: (chroot|rootless|plain|none)$/m);
      if (p.code === 0) assert.match(p.stdout, /^isolation: \S+$/m);
      else assert.match(p.stderr, /no isolation rung works here/);
      // As the unprivileged kiln user, the chroot rung cannot be available.
      assert.match(p.stdout, /^ {2}chroot\s+FAIL /m);
      // Every tool a rung, snapshot engine or layer format may need is in the image.
      assert.doesNotMatch(
        p.stdout + p.stderr,
        /not installed|install the \S+ package|apt-get install/,
        'no missing tool',
      );
      for (const bin of [
        'usr/bin/getfattr',
        'usr/bin/setfattr',
        'usr/bin/zstd',
        'usr/bin/proot',
        'usr/bin/perl',
      ]) {
        await access(join(rootfs, bin), constants.X_OK);
      }
    });
  },
);
