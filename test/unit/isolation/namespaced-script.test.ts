/**
 * The namespaced-run command line, without root: the pure builders are checked for each option, and
 * the generated setup script is executed by a real `sh` with recording stand-ins for mount, hostname
 * and ip, so the test sees the exact mount calls, their order, and the argv PID 1 finally execs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capMask, DOCKER_DEFAULT_CAPS, PLAIN_CAPS } from '../../../src/isolation/capabilities.ts';
import { execChain } from '../../../src/isolation/exec-chain.ts';
import { RUN_INIT_SCRIPT } from '../../../src/isolation/run-init.ts';
import { namespacedInvocation, namespacedScript } from '../../../src/isolation/namespaced-script.ts';
import type { NamespacedInput, NamespacedTools } from '../../../src/isolation/namespaced-script.ts';
import type { ResolvedMount } from '../../../src/isolation/root-stubs.ts';
import type { RunSpec } from '../../../src/isolation/types.ts';

const SYSCALLS = {
  pivotRoot: 155,
  umount2: 166,
  prctl: 157,
  capget: 125,
  capset: 126,
  setgroups: 116,
  setsid: 112,
};
const user = (o: Partial<RunSpec> = {}) => ({
  argv: ['/bin/sh', '-c', 'echo "a b"'],
  env: ['PATH=/bin', 'HOME=/root'],
  uid: 0,
  gid: 0,
  additionalGids: [],
  ...o,
});

describe('execChain', () => {
  const chain = (o: Partial<RunSpec>, setgroupsDenied = false, mode: 'pivot' | 'chroot' = 'pivot') =>
    execChain('/usr/bin/perl', {
      spec: user(o),
      root: '/r',
      hostCwd: '/r/w/x',
      mode,
      caps: DOCKER_DEFAULT_CAPS,
      lastCap: 40,
      syscalls: SYSCALLS,
      setgroupsDenied,
    });
  /** The init's positional arguments by name. */
  const args = (c: string[]) => {
    assert.deepEqual(c.slice(0, 2), ['/usr/bin/perl', '-e']);
    assert.equal(c[2], RUN_INIT_SCRIPT);
    assert.equal(c[3], '--');
    const [mode, root, cwd, uid, gid, groups, keep, caps, last, ...rest] = c.slice(4);
    const sys = rest.slice(0, 6);
    assert.equal(rest[6], '-', 'no seccomp filter outside PRoot mode');
    const nenv = Number(rest[7]);
    return {
      mode,
      root,
      cwd,
      uid,
      gid,
      groups,
      keep,
      caps,
      last,
      sys,
      env: rest.slice(8, 8 + nenv),
      argv: rest.slice(8 + nenv),
    };
  };

  test('exactly the valid KEY=value entries, counted, then the argv untouched', () => {
    const a = args(chain({ env: ['A=1', 'NOEQ', '=x', 'EMPTY=', 'B=with space', 'C=x=y'] }));
    assert.deepEqual(a.env, ['A=1', 'EMPTY=', 'B=with space', 'C=x=y']);
    assert.deepEqual(a.argv, ['/bin/sh', '-c', 'echo "a b"']);
    assert.deepEqual(a.sys, ['155', '166', '157', '125', '126', '116']);
    assert.equal(a.last, '40');
  });

  test('mode, root and the working directory inside the root', () => {
    for (const mode of ['pivot', 'chroot'] as const) {
      const a = args(chain({}, false, mode));
      assert.equal(a.mode, mode);
      assert.equal(a.root, '/r');
      assert.equal(a.cwd, '/w/x');
    }
  });

  test('user and groups: deduplicated supplementary groups, uid and gid in place', () => {
    const a = args(chain({ uid: 1234, gid: 5678, additionalGids: [20, 30, 20] }));
    assert.deepEqual([a.uid, a.gid, a.groups, a.keep], ['1234', '5678', '20,30', '0']);
    assert.equal(args(chain({})).groups, '', 'no supplementary groups: an empty list is set');
  });

  test('setgroups denied (single-id map): groups are kept, never set', () => {
    assert.equal(args(chain({ additionalGids: [20] }, true)).keep, '1');
  });

  test("capabilities: Docker's default set by number; RUN --security=insecure keeps all", () => {
    assert.equal(args(chain({})).caps, '0,1,3,4,5,6,7,8,10,13,18,27,29,31');
    assert.equal(args(chain({ insecure: true })).caps, 'all');
    assert.equal(capMask(DOCKER_DEFAULT_CAPS), '00000000a80425fb', "Docker's CapEff");
    for (const c of ['SYS_CHROOT', 'MKNOD', 'NET_RAW'] as const) assert.ok(!PLAIN_CAPS.includes(c), c);
  });
});

const mount = (o: ResolvedMount['spec'], host: string, sourceIsDir = true): ResolvedMount => ({
  spec: o,
  host,
  sourceIsDir,
});

describe('namespacedInvocation', () => {
  const tools: NamespacedTools = { unshare: '/u/unshare', sh: '/u/sh', mount: '/u/mount' };
  const input = (network: RunSpec['network']): NamespacedInput => ({
    network,
    root: '/r',
    hostname: 'kiln',
    setHostname: true,
    proc: '/r/proc',
    sys: '/r/sys',
    dev: '/r/dev',
    devDir: '/t/dev',
    mounts: [],
    exec: ['/x', 'arg'],
  });
  for (const [network, net] of [
    ['none', true],
    ['default', false],
    ['host', false],
  ] as const) {
    test(`network ${network}: ${net ? 'a new' : 'the host'} network namespace`, () => {
      const inv = namespacedInvocation(tools, input(network));
      assert.equal(inv.command, '/u/unshare');
      const dashdash = inv.args.indexOf('--');
      const flags = inv.args.slice(0, dashdash);
      for (const f of ['--mount', '--uts', '--ipc', '--pid', '--fork', '--kill-child']) {
        assert.ok(flags.includes(f), f);
      }
      assert.equal(flags.includes('--net'), net);
      assert.deepEqual(inv.args.slice(dashdash + 1, dashdash + 3), ['/u/sh', '-c']);
      assert.deepEqual(inv.args.slice(-3), ['kiln-sandbox', '/x', 'arg']);
    });
  }
});

describe('namespaced setup script, executed with recording tools', () => {
  let dir: string;
  let tools: NamespacedTools;
  const isRoot = process.getuid?.() === 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-nsscript-'));
    const recorder = (name: string, code = 'exit 0') =>
      `#!/bin/sh\nprintf '%s' ${name} >> ${dir}/log; for a; do printf ' [%s]' "$a" >> ${dir}/log; done; echo >> ${dir}/log\n${code}\n`;
    // The mount stand-in fails for sources named "bad" and for remounts of targets named "ro-fails".
    const mountCode =
      'case "$*" in *bad*) echo "mount: bad" >&2; exit 32;; *remount*ro-fails*) exit 32;; esac; exit 0';
    await writeFile(join(dir, 'mount'), recorder('mount', mountCode));
    await writeFile(join(dir, 'hostname'), recorder('hostname'));
    await writeFile(join(dir, 'ip'), recorder('ip'));
    // The stand-in for the exec chain also records the host name it sees.
    await writeFile(
      join(dir, 'exec'),
      recorder('exec', `echo "uts $(cat /proc/sys/kernel/hostname)" >> ${dir}/log`),
    );
    for (const t of ['mount', 'hostname', 'ip', 'exec']) await chmod(join(dir, t), 0o755);
    tools = {
      unshare: '/unused',
      sh: '/bin/sh',
      mount: join(dir, 'mount'),
      hostname: join(dir, 'hostname'),
      ip: join(dir, 'ip'),
    };
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const input = (o: Partial<NamespacedInput> = {}): NamespacedInput => ({
    network: 'default',
    root: '/r',
    hostname: 'builder',
    setHostname: true,
    proc: '/r/proc',
    sys: '/r/sys',
    dev: '/r/dev',
    devDir: '/t/dev',
    mounts: [],
    exec: [join(dir, 'exec'), 'a b', "it's"],
    ...o,
  });

  /** Runs the script as PID 1 would (in a private UTS namespace when root, so the host name is safe). */
  const execute = async (t: NamespacedTools, i: NamespacedInput) => {
    await rm(join(dir, 'log'), { force: true });
    const script = namespacedScript(t, i);
    // As root the script may set the real hostname: give it its own UTS namespace.
    const argv = isRoot
      ? ['unshare', '--uts', '--', '/bin/sh', '-c', script, 'kiln-sandbox', ...i.exec]
      : ['/bin/sh', '-c', script, 'kiln-sandbox', ...i.exec];
    const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    const log = existsSync(join(dir, 'log')) ? await readFile(join(dir, 'log'), 'utf8') : '';
    return { code: r.status, fd3: r.output[3]?.toString() ?? '', lines: log.trim().split('\n') };
  };
  const mounts = (lines: string[]) => lines.filter((l) => l.startsWith('mount'));

  test("base: root bound nodev, proc with Docker's read-only and masked paths, sysfs, nodev /dev and its nodes, devpts, shm; then exec", async () => {
    const r0 = join(dir, 'r');
    await mkdir(join(r0, 'proc/sys'), { recursive: true });
    await writeFile(join(r0, 'proc/kcore'), '');
    const r = await execute(tools, input({ root: r0, proc: join(r0, 'proc') }));
    assert.equal(r.code, 0, r.fd3);
    const m = mounts(r.lines);
    assert.deepEqual(m.slice(0, 7), [
      `mount [--bind] [${r0}] [${r0}]`,
      `mount [-o] [remount,bind,nodev] [${r0}]`,
      `mount [-t] [proc] [-o] [nosuid,nodev,noexec] [proc] [${r0}/proc]`,
      `mount [--bind] [${r0}/proc/sys] [${r0}/proc/sys]`,
      `mount [-o] [remount,bind,ro] [${r0}/proc/sys]`,
      `mount [--bind] [/dev/null] [${r0}/proc/kcore]`,
      'mount [-t] [sysfs] [-o] [ro,nosuid,nodev,noexec] [sysfs] [/r/sys]',
    ]);
    assert.deepEqual(m.slice(7, 9), [
      'mount [--bind] [/t/dev] [/r/dev]',
      'mount [-o] [remount,bind,nosuid,nodev] [/r/dev]',
    ]);
    const nodes = m.filter((l) => l.startsWith('mount [--bind] [/dev/') && l.includes('[/r/dev/'));
    const hostNodes = ['null', 'zero', 'full', 'random', 'urandom', 'tty'].filter((n) =>
      existsSync(`/dev/${n}`),
    );
    assert.deepEqual(
      nodes,
      hostNodes.map((n) => `mount [--bind] [/dev/${n}] [/r/dev/${n}]`),
    );
    assert.match(m.at(-2)!, /^mount \[-t\] \[devpts\] .*\[\/r\/dev\/pts\]$/);
    assert.match(m.at(-1)!, /^mount \[-t\] \[tmpfs\] .*mode=1777.* \[shm\] \[\/r\/dev\/shm\]$/);
    assert.equal(r.lines.at(-2), "exec [a b] [it's]");
    assert.ok(!r.lines.some((l) => l.startsWith('ip')), 'no loopback set-up with the host network');
  });

  test('network none brings the loopback up; without ip it is skipped', async () => {
    const r = await execute(tools, input({ network: 'none' }));
    assert.ok(r.lines.includes('ip [link] [set] [lo] [up]'), r.lines.join('\n'));
    const noIp = await execute({ ...tools, ip: undefined }, input({ network: 'none' }));
    assert.equal(noIp.code, 0);
    assert.ok(!noIp.lines.some((l) => l.startsWith('ip')));
  });

  test('hostname: set through /proc or the hostname tool, to the given name', async () => {
    const r = await execute(tools, input({ hostname: "we'ird" }));
    assert.equal(r.code, 0, r.fd3);
    // As root the /proc write wins (in the private UTS namespace); otherwise the tool is called.
    if (isRoot) assert.equal(r.lines.at(-1), "uts we'ird");
    else assert.ok(r.lines.includes("hostname [we'ird]"), r.lines.join('\n'));
  });

  test('hostname: left as inherited where the probe found sethostname denied', async () => {
    const r = await execute(tools, input({ hostname: 'unset-here', setHostname: false }));
    assert.equal(r.code, 0, r.fd3);
    assert.ok(!r.lines.some((l) => l.includes('unset-here')), r.lines.join('\n'));
  });

  test('mounts: tmpfs with and without size, rw bind, ro bind remounted read-only', async () => {
    const r = await execute(
      tools,
      input({
        mounts: [
          mount({ type: 'tmpfs', target: '/t1', size: 1024 }, '/r/t1'),
          mount({ type: 'tmpfs', target: '/t2' }, '/r/t2'),
          mount({ type: 'bind', source: '/src/rw', target: '/rw', readonly: false }, '/r/rw'),
          mount({ type: 'bind', source: '/src/ro', target: '/ro', readonly: true }, '/r/ro'),
        ],
      }),
    );
    assert.equal(r.code, 0, r.fd3);
    const m = mounts(r.lines);
    const tail = m.slice(m.findIndex((l) => l.includes('[/r/t1]')));
    assert.deepEqual(tail, [
      'mount [-t] [tmpfs] [-o] [nosuid,nodev,size=1024] [tmpfs] [/r/t1]',
      'mount [-t] [tmpfs] [-o] [nosuid,nodev] [tmpfs] [/r/t2]',
      'mount [--rbind] [/src/rw] [/r/rw]',
      'mount [--rbind] [/src/ro] [/r/ro]',
      'mount [-o] [remount,bind,ro] [/r/ro]',
    ]);
  });

  test('a read-only remount tries the flag sets a user namespace may have locked', async () => {
    const r = await execute(
      tools,
      input({
        mounts: [mount({ type: 'bind', source: '/s', target: '/ro-fails', readonly: true }, '/r/ro-fails')],
      }),
    );
    assert.equal(r.code, 125);
    assert.match(r.fd3, /kiln sandbox: cannot make \/ro-fails read-only/);
    assert.equal(mounts(r.lines).filter((l) => l.includes('remount') && l.includes('ro-fails')).length, 8);
    assert.ok(!r.lines.some((l) => l.startsWith('exec')), 'the command never runs');
  });

  test('a failing bind stops the set-up with exit 125 and the reason on fd 3', async () => {
    const r = await execute(
      tools,
      input({ mounts: [mount({ type: 'bind', source: '/bad', target: '/m', readonly: false }, '/r/m')] }),
    );
    assert.equal(r.code, 125);
    assert.match(r.fd3, /cannot bind \/bad on \/m/);
    assert.match(r.fd3, /mount: bad/);
    assert.ok(!r.lines.some((l) => l.startsWith('exec')));
  });
});
