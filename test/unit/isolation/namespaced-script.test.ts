/**
 * The namespaced-run command line, without root: the pure builders are checked for each option, and
 * the generated setup script is executed by a real `sh` with recording stand-ins for mount, hostname
 * and ip, so the test sees the exact mount calls, their order, and the argv PID 1 finally execs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execChain } from '../../../src/isolation/exec-chain.ts';
import { namespacedInvocation, namespacedScript } from '../../../src/isolation/namespaced-script.ts';
import type { NamespacedInput, NamespacedTools } from '../../../src/isolation/namespaced-script.ts';
import type { ResolvedMount } from '../../../src/isolation/root-stubs.ts';
import type { RunSpec } from '../../../src/isolation/types.ts';

const CHAIN_TOOLS = { env: '/usr/bin/env', setpriv: '/usr/bin/setpriv', nsenter: '/usr/bin/nsenter' };
const user = (o: Partial<RunSpec> = {}) => ({
  argv: ['/bin/sh', '-c', 'echo "a b"'],
  env: ['PATH=/bin', 'HOME=/root'],
  uid: 0,
  gid: 0,
  additionalGids: [],
  ...o,
});

describe('execChain', () => {
  const chain = (o: Partial<RunSpec>, setgroupsDenied = false) =>
    execChain(CHAIN_TOOLS, { spec: user(o), root: '/r', hostCwd: '/r/w', setgroupsDenied });

  test('env -i with exactly the valid KEY=value entries, then setpriv, nsenter, argv', () => {
    assert.deepEqual(chain({ env: ['A=1', 'NOEQ', '=x', 'EMPTY=', 'B=with space'] }), [
      '/usr/bin/env',
      '-i',
      '--',
      'A=1',
      'EMPTY=',
      'B=with space',
      '/usr/bin/setpriv',
      '--regid=0',
      '--clear-groups',
      '--',
      '/usr/bin/nsenter',
      '--root=/r',
      '--wd=/r/w',
      '--setuid=0',
      '--',
      '/bin/sh',
      '-c',
      'echo "a b"',
    ]);
  });

  test('user and groups: deduplicated supplementary groups, uid and gid in place', () => {
    const c = chain({ uid: 1234, gid: 5678, additionalGids: [20, 30, 20] });
    assert.ok(c.includes('--regid=5678'));
    assert.ok(c.includes('--groups=20,30'));
    assert.ok(c.includes('--setuid=1234'));
    assert.ok(!c.includes('--clear-groups'));
  });

  test('setgroups denied (single-id map): groups are kept, never set', () => {
    const c = chain({ additionalGids: [20] }, true);
    assert.ok(c.includes('--keep-groups'));
    assert.ok(!c.some((a) => a.startsWith('--groups') || a === '--clear-groups'));
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
    hostname: 'kiln',
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
    hostname: 'builder',
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

  test('base: proc, sysfs, /dev, its nodes, devpts, shm in order; then exec with argv intact', async () => {
    const r = await execute(tools, input());
    assert.equal(r.code, 0, r.fd3);
    const m = mounts(r.lines);
    assert.equal(m[0], 'mount [-t] [proc] [-o] [nosuid,nodev,noexec] [proc] [/r/proc]');
    assert.equal(m[1], 'mount [-t] [sysfs] [-o] [ro,nosuid,nodev,noexec] [sysfs] [/r/sys]');
    assert.equal(m[2], 'mount [--bind] [/t/dev] [/r/dev]');
    const nodes = m.filter((l) => l.startsWith('mount [--bind] [/dev/'));
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
    assert.equal(mounts(r.lines).filter((l) => l.includes('remount')).length, 5);
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
