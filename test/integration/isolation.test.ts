import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import {
  chmod,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { probeIsolation } from '../../src/isolation/probe.ts';
import { createSandbox } from '../../src/isolation/sandbox.ts';
import { prootUnavailable } from '../../src/isolation/plain-proot.ts';
import type { PlainProc } from '../../src/isolation/plain-proot.ts';
import { subuidRange } from '../../src/isolation/userns.ts';
import type { ProbeResult, Rung, RunResult, RunSpec } from '../../src/isolation/types.ts';
import { isKilnError } from '../../src/util/errors.ts';
import { makeBusyboxRootfs, staticBusybox } from './fixtures/isolation/rootfs.ts';

const execFileP = promisify(execFile);
const REPO = new URL('../..', import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;

/** Every path below `dir` (relative), for "nothing was left behind" checks. */
async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = join(prefix, e.name);
    out.push(rel);
    if (e.isDirectory()) out.push(...(await listTree(dir, rel)));
  }
  return out.sort();
}

let work: string;
let root: string;
let busybox: string | undefined;
let probe: ProbeResult | undefined;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-iso-'));
  await chmod(work, 0o755);
  root = join(work, 'rootfs');
  busybox = staticBusybox();
  if (busybox) await makeBusyboxRootfs(root, busybox);
  if (isRoot) probe = await probeIsolation({ want: 'auto', workDir: join(work, 'probe') });
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('probeIsolation', () => {
  test(
    'as root: reports all three rungs, chooses chroot, overlay known',
    { skip: !isRoot && 'needs root' },
    () => {
      assert.ok(probe);
      assert.deepEqual(
        probe.reports.map((r) => r.rung),
        ['chroot', 'rootless', 'plain'],
      );
      for (const r of probe.reports) assert.ok(r.reason.length > 0 && !r.reason.includes('\n'), r.reason);
      assert.equal(probe.chosen, 'chroot');
      assert.match(probe.reports[0]!.reason, /namespaces work/);
      assert.match(probe.reports[2]!.reason, /chroot works/);
      assert.equal(typeof probe.overlay, 'boolean');
    },
  );

  test('a specific rung that works is chosen', { skip: !isRoot && 'needs root' }, async () => {
    for (const want of ['plain', 'chroot'] as const) {
      const p = await probeIsolation({ want, workDir: join(work, 'probe') });
      assert.equal(p.chosen, want);
      assert.equal(p.reports.length, 3);
    }
    assert.deepEqual(await readdir(join(work, 'probe')), [], 'probe cleans its scratch dirs');
  });

  test(
    'a build probes only until a rung is chosen: the same choice, the rest reported as not probed',
    { skip: !isRoot && 'needs root' },
    async () => {
      assert.ok(probe);
      const quick = await probeIsolation({ want: 'auto', workDir: join(work, 'probe'), stopAtChosen: true });
      assert.equal(quick.chosen, probe.chosen);
      assert.equal(quick.snapshot, probe.snapshot);
      assert.equal(quick.overlay, probe.overlay);
      assert.deepEqual(quick.reports[0], probe.reports[0]);
      for (const r of quick.reports.slice(1)) {
        assert.equal(r.ok, false);
        assert.match(r.reason, /^not probed: chroot comes first and works/);
      }
      // A rung asked for by name is probed whatever comes first; the others are not.
      const plain = await probeIsolation({ want: 'plain', workDir: join(work, 'probe'), stopAtChosen: true });
      assert.equal(plain.chosen, 'plain');
      assert.equal(plain.reports.find((r) => r.rung === 'plain')!.ok, true);
      assert.equal(
        plain.reports.find((r) => r.rung === 'chroot')!.reason,
        'not probed: isolation plain was asked for',
      );
      assert.deepEqual(await readdir(join(work, 'probe')), [], 'probe cleans its scratch dirs');
    },
  );
});

// The plain rung twice: /proc bound by PRoot, and the bare chroot.
const RUNGS: [Rung, PlainProc | undefined][] = [
  ['chroot', undefined],
  ['plain', 'proot'],
  ['plain', 'none'],
];

for (const [rung, proc] of RUNGS) {
  const available = () =>
    probe?.reports.find((r) => r.rung === rung)?.ok === true && (proc !== 'proot' || !prootUnavailable());
  describe(
    `sandbox ${rung}${proc ? ` (/proc: ${proc})` : ''}`,
    { skip: (!isRoot && 'needs root') || undefined },
    () => {
      const base = (): RunSpec => ({
        root,
        argv: [],
        env: ['PATH=/bin', 'HOME=/root'],
        cwd: '/',
        uid: 0,
        gid: 0,
        additionalGids: [],
        mounts: [],
        network: 'default',
        hostname: 'kiln',
      });
      const run = async (spec: Partial<RunSpec>): Promise<RunResult & { out: string }> => {
        const chunks: Buffer[] = [];
        const sb = createSandbox(rung, {
          workDir: join(work, `sb-${rung}-${proc}`, 'b', 'sandbox'),
          ...(proc ? { plainProc: proc } : {}),
        });
        const r = await sb.run({
          ...base(),
          ...spec,
          onStdout: (c) => chunks.push(c),
          onStderr: (c) => chunks.push(c),
        });
        return { ...r, out: Buffer.concat(chunks).toString() };
      };
      const sh = (script: string, spec: Partial<RunSpec> = {}) =>
        run({ ...spec, argv: ['/bin/sh', '-c', script] });
      let skip: string | false = false;

      before(() => {
        if (!busybox) skip = 'no static busybox';
        else if (!available())
          skip = `rung ${rung} unavailable: ${probe?.reports.find((r) => r.rung === rung)?.reason}`;
      });

      test('echo, streamed output and tail', async (t) => {
        if (skip) return t.skip(skip);
        const r = await sh('echo hi; echo err >&2');
        assert.equal(r.exitCode, 0);
        assert.equal(r.signal, undefined);
        assert.match(r.out, /hi\n/);
        assert.match(r.out, /err\n/);
        assert.ok(r.tail.includes('hi'));
      });

      test('tail keeps only the last 4 KiB', async (t) => {
        if (skip) return t.skip(skip);
        const r = await sh('i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done');
        assert.equal(r.tail.at(-1), 'line1999');
        assert.ok(r.tail.join('\n').length <= 4096);
        assert.ok(!r.tail.includes('line0'));
      });

      const exits: [string, string[], number][] = [
        ['exit 0', ['/bin/sh', '-c', 'exit 0'], 0],
        ['exit 3', ['/bin/sh', '-c', 'exit 3'], 3],
        ['exit 255', ['/bin/sh', '-c', 'exit 255'], 255],
        ['false', ['/bin/false'], 1],
        ['missing command', ['/no/such/cmd'], 127],
      ];
      for (const [name, argv, code] of exits) {
        test(`exit code propagates: ${name}`, async (t) => {
          if (skip) return t.skip(skip);
          assert.equal((await run({ argv })).exitCode, code);
        });
      }

      test('killed by a signal is reported', async (t) => {
        if (skip) return t.skip(skip);
        if (rung === 'chroot') {
          // PID 1 of a PID namespace ignores even SIGKILL sent from inside: kill a child instead.
          const r = await sh("sh -c 'kill -9 $$'; exit $?");
          assert.equal(r.exitCode, 137);
          return;
        }
        const r = await sh('kill -9 $$');
        assert.equal(r.exitCode, 137);
        assert.match(r.signal ?? '', /SIGKILL/);
      });

      test('abort signal kills the command', async (t) => {
        if (skip) return t.skip(skip);
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 200);
        const r = await sh('sleep 30', { signal: ac.signal });
        assert.match(r.signal ?? '', /aborted/);
      });

      test('timeout kills the command', async (t) => {
        if (skip) return t.skip(skip);
        const t0 = Date.now();
        const r = await sh('sleep 30', { timeoutMs: 300 });
        assert.ok(Date.now() - t0 < 10000);
        assert.notEqual(r.exitCode, 0);
        assert.match(r.signal ?? '', /timeout/);
      });

      test('a background process ends with the step and is named in a warning', async (t) => {
        if (skip) return t.skip(skip);
        const warnings: string[] = [];
        const sb = createSandbox(rung, {
          workDir: join(work, `sb-linger-${rung}`),
          onWarning: (w) => warnings.push(w),
        });
        const t0 = Date.now();
        // setsid: a new session does not take it out of the step either.
        const r = await sb.run({
          ...base(),
          argv: ['/bin/sh', '-c', 'sleep 312 & setsid sleep 313 & sleep 1; echo started'],
        });
        assert.equal(r.exitCode, 0);
        assert.ok(Date.now() - t0 < 10_000, 'the step does not wait for its background processes');
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.match(
          warnings[0]!,
          /RUN left 2 processes running after its command ended: .*\(pid \d+: (setsid )?sleep 31[23]\), .*\(pid \d+: (setsid )?sleep 31[23]\); killed/,
        );
        const cmdline = (p: string) => {
          try {
            return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
          } catch {
            return '';
          }
        };
        const left = readdirSync('/proc').filter(
          (p) => /^\d+$/.test(p) && /^(setsid )?sleep 31[23]$/.test(cmdline(p)),
        );
        assert.deepEqual(left, [], 'no sleep of the step is left on the host');
      });

      test('environment is exactly spec.env', async (t) => {
        if (skip) return t.skip(skip);
        const env = ['PATH=/bin', 'A=1', 'B=with space', 'EMPTY='];
        const r = await run({ argv: ['/bin/env'], env });
        assert.equal(r.exitCode, 0);
        assert.deepEqual(r.out.trim().split('\n').sort(), [...env].sort());
      });

      const users: [string, Partial<RunSpec>, string, string, string[]][] = [
        ['root', { uid: 0, gid: 0 }, '0', '0', ['0']],
        ['1000:1000', { uid: 1000, gid: 1000 }, '1000', '1000', ['1000']],
        [
          '1000:1000 + 2000,3000',
          { uid: 1000, gid: 1000, additionalGids: [2000, 3000] },
          '1000',
          '1000',
          ['1000', '2000', '3000'],
        ],
        ['1234:5678', { uid: 1234, gid: 5678 }, '1234', '5678', ['5678']],
      ];
      for (const [name, spec, wu, wg, wgroups] of users) {
        test(`user ${name}`, async (t) => {
          if (skip) return t.skip(skip);
          const r = await sh('id -u; id -g; id -G', spec);
          assert.equal(r.exitCode, 0, r.out);
          const [u, g, groups] = r.out.trim().split('\n');
          assert.equal(u, wu);
          assert.equal(g, wg);
          // `id -G` lists the primary gid too.
          assert.deepEqual([...new Set(groups!.trim().split(/\s+/))].sort(), wgroups);
        });
      }

      test('non-root user cannot write root-owned files', async (t) => {
        if (skip) return t.skip(skip);
        const r = await sh('echo x > /etc/passwd', { uid: 1000, gid: 1000 });
        assert.notEqual(r.exitCode, 0);
      });

      test('working directory is used and created if missing', async (t) => {
        if (skip) return t.skip(skip);
        const r = await sh('pwd', { cwd: '/srv/app/sub' });
        assert.equal(r.out.trim(), '/srv/app/sub');
        assert.ok((await lstat(join(root, 'srv/app/sub'))).isDirectory());
        await rm(join(root, 'srv'), { recursive: true });
      });

      test('bind mounts ro and rw, tmpfs; no stubs left', async (t) => {
        if (skip) return t.skip(skip);
        const ro = join(work, `ro-${rung}`);
        const rw = join(work, `rw-${rung}`);
        const file = join(work, `file-${rung}`);
        await mkdir(ro, { recursive: true });
        await mkdir(rw, { recursive: true });
        await writeFile(join(ro, 'in.txt'), 'from host\n');
        await writeFile(join(rw, 'old.txt'), 'old\n');
        await writeFile(file, 'secret-value');
        const before = await listTree(root);
        const r = await sh(
          [
            'cat /mnt/ro/in.txt',
            'if (echo x > /mnt/ro/new) 2>/dev/null; then echo ro-writable; else echo ro-refused; fi',
            'cat /mnt/rw/old.txt; echo written > /mnt/rw/new.txt',
            'echo t > /deep/tmp/x && cat /deep/tmp/x',
            'cat /run/secrets/s; echo',
          ].join('; '),
          {
            mounts: [
              { type: 'bind', source: ro, target: '/mnt/ro', readonly: true },
              { type: 'bind', source: rw, target: '/mnt/rw', readonly: false },
              { type: 'tmpfs', target: '/deep/tmp', size: 1 << 20 },
              { type: 'bind', source: file, target: '/run/secrets/s', readonly: true },
            ],
          },
        );
        assert.equal(r.exitCode, 0, r.out);
        const lines = r.out.trim().split('\n');
        assert.equal(lines[0], 'from host');
        // The plain rung emulates binds by copying: read-only is not enforced, but nothing is kept.
        assert.equal(lines[1], rung === 'plain' ? 'ro-writable' : 'ro-refused');
        assert.deepEqual(lines.slice(2), ['old', 't', 'secret-value']);
        assert.equal(await readFile(join(rw, 'new.txt'), 'utf8'), 'written\n');
        assert.ok(!existsSync(join(ro, 'new')));
        assert.deepEqual(await listTree(root), before, 'mount targets, /proc, /dev, /etc stubs are removed');
      });

      test('existing mount target content is shadowed, then back', async (t) => {
        if (skip) return t.skip(skip);
        await mkdir(join(root, 'opt/data'), { recursive: true });
        await writeFile(join(root, 'opt/data/image.txt'), 'image\n');
        const src = join(work, `shadow-${rung}`);
        await mkdir(src, { recursive: true });
        await writeFile(join(src, 'host.txt'), 'host\n');
        const r = await sh('ls /opt/data', {
          mounts: [{ type: 'bind', source: src, target: '/opt/data', readonly: true }],
        });
        assert.equal(r.out.trim(), 'host.txt');
        assert.equal(await readFile(join(root, 'opt/data/image.txt'), 'utf8'), 'image\n');
        assert.deepEqual(await readdir(join(root, 'opt/data')), ['image.txt']);
        await rm(join(root, 'opt'), { recursive: true });
      });

      test('symlinked mount targets resolve inside the root', async (t) => {
        if (skip) return t.skip(skip);
        const outside = join(work, `outside-${rung}`);
        await mkdir(outside, { recursive: true });
        await symlink(outside, join(root, 'escape'));
        const src = join(work, `src-${rung}`);
        await mkdir(src, { recursive: true });
        await writeFile(join(src, 'f'), 'f\n');
        const r = await sh('cat /escape/m/f', {
          mounts: [{ type: 'bind', source: src, target: '/escape/m', readonly: true }],
        });
        assert.equal(r.exitCode, 0, r.out);
        assert.deepEqual(await readdir(outside), [], 'nothing created outside the root');
        assert.ok(!existsSync(join(root, outside)), 'stub under the root removed');
        await rm(join(root, 'escape'));
      });

      test('/etc/hosts, /etc/resolv.conf and /etc/hostname are provided, never left behind', async (t) => {
        if (skip) return t.skip(skip);
        const hosts = join(work, 'hosts-in');
        const resolv = join(work, 'resolv-in');
        await writeFile(hosts, '10.1.2.3 registry.local\n');
        await writeFile(resolv, 'nameserver 10.9.9.9\n');
        const r = await sh('cat /etc/hosts /etc/resolv.conf /etc/hostname; echo changed > /etc/resolv.conf', {
          hostsFile: hosts,
          resolvConfFile: resolv,
          hostname: 'builder',
        });
        assert.equal(r.exitCode, 0, r.out);
        assert.equal(r.out, '10.1.2.3 registry.local\nnameserver 10.9.9.9\nbuilder\n');
        assert.equal(await readFile(resolv, 'utf8'), 'nameserver 10.9.9.9\n', 'host file untouched');
        assert.deepEqual((await readdir(join(root, 'etc'))).sort(), ['group', 'passwd']);
      });

      test('an existing /etc/hosts in the image is shown replaced and kept intact', async (t) => {
        if (skip) return t.skip(skip);
        await writeFile(join(root, 'etc/hosts'), 'image hosts\n');
        const r = await sh('cat /etc/hosts');
        assert.match(r.out, /localhost kiln/);
        assert.equal(await readFile(join(root, 'etc/hosts'), 'utf8'), 'image hosts\n');
        await rm(join(root, 'etc/hosts'));
      });

      if (rung === 'chroot') {
        test('new PID namespace: the command is a child of the run init, PID 1', async (t) => {
          if (skip) return t.skip(skip);
          assert.deepEqual((await sh('echo $PPID; cat /proc/1/comm')).out.trim().split('\n'), ['1', 'perl']);
        });

        test('hostname is set', async (t) => {
          if (skip) return t.skip(skip);
          assert.equal((await sh('hostname')).out.trim(), 'kiln');
          assert.equal((await sh('hostname', { hostname: 'other' })).out.trim(), 'other');
        });

        test('/proc is a fresh mount of the new PID namespace; /dev is minimal', async (t) => {
          if (skip) return t.skip(skip);
          const r = await sh(
            'ls /proc | grep -E "^[0-9]+$" | sort -n | head -1; ls /dev | tr "\\n" " "; echo; echo x > /dev/null && head -c 4 /dev/zero | wc -c',
          );
          const [firstPid, devs, zero] = r.out.trim().split('\n');
          assert.equal(firstPid, '1');
          for (const n of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'shm', 'pts', 'fd']) {
            assert.ok(devs!.split(' ').includes(n), `/dev/${n} in ${devs}`);
          }
          assert.equal(zero!.trim(), '4');
        });

        const nets: [RunSpec['network'], (lines: string[]) => void][] = [
          ['none', (ifs) => assert.deepEqual(ifs, ['lo'])],
          ['default', (ifs) => assert.deepEqual(ifs, hostInterfaces())],
          ['host', (ifs) => assert.deepEqual(ifs, hostInterfaces())],
        ];
        for (const [network, check] of nets) {
          test(`network ${network}`, async (t) => {
            if (skip) return t.skip(skip);
            const r = await sh('tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort', { network });
            check(r.out.trim().split('\n'));
          });
        }

        test('loopback is up with network none', async (t) => {
          if (skip) return t.skip(skip);
          const r = await sh('cat /sys/class/net/lo/operstate 2>/dev/null || ip link show lo', {
            network: 'none',
          });
          assert.match(r.out, /UNKNOWN|UP|unknown/);
        });
      } else {
        test(`plain: ${proc === 'proot' ? '/proc and /dev/pts bound' : 'no /proc'}, /dev/shm, /dev nodes made by mknod; all removed afterwards`, async (t) => {
          if (skip) return t.skip(skip);
          const r = await sh(
            'ls /proc/1 >/dev/null 2>&1 && echo proc || echo noproc; readlink /proc/self/exe || echo noexe; ' +
              'ls -d /dev/pts/. >/dev/null 2>&1 && echo pts || echo nopts; touch /dev/shm/x && echo shm; head -c 3 /dev/zero | wc -c',
          );
          assert.deepEqual(
            r.out.trim().split(/\s+/),
            proc === 'proot'
              ? ['proc', '/bin/busybox', 'pts', 'shm', '3']
              : ['noproc', 'noexe', 'nopts', 'shm', '3'],
            r.out,
          );
          assert.ok(!existsSync(join(root, 'dev')));
          assert.ok(!existsSync(join(root, 'proc')));
        });
      }

      if (rung === 'chroot') {
        test('a mount that cannot be made is an isolation error, not a RUN failure', async (t) => {
          if (skip) return t.skip(skip);
          const src = join(work, 'dir-onto-file');
          await mkdir(src, { recursive: true });
          const before = await listTree(root);
          const cases: [string, string, RegExp][] = [
            ['/etc/passwd', 'SANDBOX_SETUP', /cannot bind .* on \/etc\/passwd/],
            ['/etc/passwd/x', 'MOUNT_TARGET', /\/etc\/passwd\/x.*ENOTDIR/],
          ];
          for (const [target, code, msg] of cases) {
            await assert.rejects(
              () => sh('true', { mounts: [{ type: 'bind', source: src, target, readonly: false }] }),
              (e: unknown) =>
                isKilnError(e) && e.category === 'isolation' && e.code === code && msg.test(e.message),
            );
          }
          assert.deepEqual(await listTree(root), before);
        });
      } else {
        test('plain: network none is warned about', async (t) => {
          if (skip) return t.skip(skip);
          const warnings: string[] = [];
          const sb = createSandbox('plain', {
            ...(proc ? { plainProc: proc } : {}),
            workDir: join(work, 'sb-warn'),
            onWarning: (w) => warnings.push(w),
          });
          const r = await sb.run({ ...base(), argv: ['/bin/true'], network: 'none' });
          assert.equal(r.exitCode, 0);
          assert.equal(warnings.length, 1);
          assert.match(warnings[0]!, /network=none/);
        });
      }

      test('failure to start: missing root is an isolation error', async (t) => {
        if (skip) return t.skip(skip);
        await assert.rejects(
          () => run({ root: join(work, 'nope'), argv: ['/bin/true'] }),
          (e: unknown) => isKilnError(e) && e.category === 'isolation' && e.code === 'ROOT_MISSING',
        );
      });
    },
  );
}

function hostInterfaces(): string[] {
  return readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0]!.trim())
    .filter(Boolean)
    .sort();
}

test('subuidRange reads name and uid entries', async () => {
  const f = join(work, 'subuid');
  await writeFile(f, '# comment\nalice:100000:65536\n1005:300000:1000\nbad:x:y\n');
  assert.deepEqual(subuidRange('alice', f), { start: 100000, count: 65536 });
  assert.deepEqual(subuidRange('bob', f, 1005), { start: 300000, count: 1000 });
  assert.equal(subuidRange('bad', f), undefined);
  assert.equal(subuidRange('carol', f), undefined);
  assert.equal(subuidRange('alice', join(work, 'missing')), undefined);
});

/** Creates the unprivileged kilntest user with subordinate ids when missing. */
function ensureTestUser(): string | undefined {
  try {
    execFileSync('id', ['kilntest'], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', 'kilntest']);
  }
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
    if (!/^kilntest:/m.test(text)) {
      execFileSync('sh', ['-c', `echo kilntest:200000:65536 >> ${f}`]);
    }
  }
  return undefined;
}

function userNamespacesForbidden(): string | undefined {
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  if (read('/proc/sys/kernel/unprivileged_userns_clone') === '0') return 'kernel.unprivileged_userns_clone=0';
  if (read('/proc/sys/user/max_user_namespaces') === '0') return 'user.max_user_namespaces=0';
  try {
    execFileSync('runuser', ['-u', 'kilntest', '--', 'unshare', '--user', '--map-root-user', 'true'], {
      stdio: 'ignore',
    });
  } catch {
    return 'unprivileged user namespaces are refused by the kernel';
  }
  return undefined;
}

describe(
  'rootless (as an unprivileged user)',
  { skip: (!isRoot && 'needs root to create the test user') || undefined },
  () => {
    let rlRoot: string;
    let forbidden: string | undefined;
    before(async () => {
      if (!busybox) return;
      ensureTestUser();
      forbidden = userNamespacesForbidden();
      rlRoot = join(work, 'rootless');
      await mkdir(rlRoot, { recursive: true });
      await cp(root, join(rlRoot, 'root'), { recursive: true, verbatimSymlinks: true });
      execFileSync('chown', ['-R', 'kilntest:kilntest', rlRoot]);
    });

    const modes: [string, string[]][] = [
      ['unshare --map-auto', []],
      ['newuidmap helper', ['--helper']],
    ];
    for (const [name, extra] of modes) {
      test(`re-exec with ${name}: root inside, full id map, sandbox works`, async (t) => {
        if (!busybox) return t.skip('no static busybox');
        if (forbidden) return t.skip(forbidden);
        const rootfs = join(rlRoot, 'root');
        await rm(join(rootfs, 'tmp/owned'), { force: true });
        const { stdout } = await execFileP(
          'runuser',
          [
            '-u',
            'kilntest',
            '--',
            process.execPath,
            '--import',
            'tsx',
            'test/integration/fixtures/isolation/rootless-run.ts',
            rootfs,
            join(rlRoot, 'work'),
            ...extra,
          ],
          { cwd: REPO, maxBuffer: 1 << 20 },
        );
        const res = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
          uidMap: string;
          probe: ProbeResult;
          idRoot: { exitCode: number; out: string };
          chown: { exitCode: number; out: string };
          asUser: { exitCode: number; out: string };
          pid: { exitCode: number; out: string };
          netNone: { exitCode: number; out: string };
          exit: { exitCode: number; out: string };
        };
        assert.equal(res.probe.chosen, 'rootless');
        assert.equal(res.probe.fullIdMap, true);
        assert.match(res.probe.reports.find((r) => r.rung === 'rootless')!.reason, /user namespace/);
        assert.match(res.uidMap, /^\s*0\s+\d+\s+1\s*\n\s*1\s+\d+\s+6553[56]\s*$/);
        assert.equal(res.idRoot.out, '0\n0');
        assert.equal(res.chown.exitCode, 0, res.chown.out);
        assert.equal(res.chown.out, '1000:1000');
        assert.equal(res.asUser.out, '1000\n1000\n/home/u');
        assert.equal(res.pid.out, '1\nkiln\nproc');
        assert.deepEqual(
          res.netNone.out
            .split('\n')
            .slice(2)
            .map((l) => l.split(':')[0]!.trim()),
          ['lo'],
        );
        assert.equal(res.exit.exitCode, 3);
        // Seen from outside, the chowned file belongs to a subordinate id of kilntest.
        const st = await lstat(join(rootfs, 'tmp/owned'));
        const range = subuidRange('kilntest')!;
        assert.equal(st.uid, range.start + 999);
        assert.equal(st.gid, subuidRange('kilntest', '/etc/subgid')!.start + 999);
        assert.deepEqual((await readdir(rootfs)).sort(), ['bin', 'etc', 'home', 'root', 'tmp']);
      });
    }

    test('probe as unprivileged user: chroot is refused with a hint', async (t) => {
      if (!busybox) return t.skip('no static busybox');
      const { stdout } = await execFileP(
        'runuser',
        [
          '-u',
          'kilntest',
          '--',
          process.execPath,
          '--import',
          'tsx',
          'test/integration/fixtures/isolation/probe-want.ts',
          'chroot',
          join(rlRoot, 'probe'),
        ],
        { cwd: REPO },
      );
      const res = JSON.parse(stdout.trim()) as {
        error?: { code: string; category: string; message: string; hint: string };
      };
      assert.ok(res.error, stdout);
      assert.equal(res.error.code, 'RUNG_UNAVAILABLE');
      assert.equal(res.error.category, 'isolation');
      assert.match(res.error.message, /chroot.*needs root, running as uid \d+/);
      assert.match(res.error.hint, /--privileged|seccomp=unconfined/);
    });
  },
);
