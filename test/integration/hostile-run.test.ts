/**
 * Hostile RUN steps (issue 14): the program in fixtures/hostile/hostile.c tries the chroot double
 * escape (and, from wherever it got, the host canary, kiln's environment and docker config), mknod +
 * read of /dev/kmsg, mounting proc and sysfs, writing kernel.core_pattern, ptrace and kill of a host
 * process of another uid, sethostname, reading every /proc/<pid>/environ for the registry password,
 * reading the docker config, and a process left behind to read a later RUN's secret. In every rung
 * this machine has (rootless as an unprivileged user with a subuid range, chroot as root, plain
 * forced) each must fail and the host's canaries stay as they were. The same program runs under
 * `buildah build --isolation chroot`; its results are printed beside kiln's, not asserted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capMask, DOCKER_DEFAULT_CAPS, PLAIN_CAPS } from '../../src/isolation/capabilities.ts';
import { kiln } from '../helpers/cli.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { ATTACKS, formatReport, runHostileSuite } from '../helpers/hostile-run.ts';
import type { HostileBuild, HostileOutcome, HostileReport } from '../helpers/hostile-run.ts';

const isRoot = process.getuid?.() === 0;
const have = (t: string) => ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, t)));
const skip = !isRoot ? 'needs root (canary process, test user, every rung)' : !have('gcc') && 'needs gcc';
const PASSWORD = `hostile-pw-${process.pid}`;
const TOKEN = Buffer.from(`canary:docker-token-${process.pid}`).toString('base64');
const USER = 'kilntest';

let work: string;
let reg: TestRegistry | undefined;
let base: string;
const reports: string[] = [];

/** The unprivileged build user with a subordinate id range, as isolation.test.ts makes it. */
function ensureSubidUser(): string | undefined {
  try {
    execFileSync('id', [USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', USER]);
  }
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
    if (!new RegExp(`^${USER}:`, 'm').test(text))
      execFileSync('sh', ['-c', `echo ${USER}:200000:65536 >> ${f}`]);
  }
  try {
    execFileSync('runuser', ['-u', USER, '--', 'unshare', '--user', '--map-root-user', 'true'], {
      stdio: 'ignore',
    });
  } catch {
    return 'unprivileged user namespaces are refused by the kernel';
  }
  return undefined;
}

function kilnInvoke(rung: string, user?: string, extraEnv: Record<string, string> = {}) {
  return async (b: HostileBuild): Promise<HostileOutcome> => {
    const wd = join(b.context, '..', 'work');
    await mkdir(wd, { recursive: true });
    if (user) execFileSync('chown', [`${user}:`, wd]);
    const r = await kiln(
      [
        'build',
        '--context',
        b.context,
        '--dockerfile',
        b.dockerfile,
        '--no-push',
        '--isolation',
        rung,
        '--secret',
        `id=tok,src=${b.secretFile}`,
        '--insecure-registry',
        reg!.host,
        '--work-dir',
        wd,
      ],
      {
        ...b.env,
        ...extraEnv,
        KILN_REGISTRY: reg!.host,
        KILN_REGISTRY_USERNAME: 'kiln',
        KILN_REGISTRY_PASSWORD: PASSWORD,
      },
      user ? { user } : {},
    );
    return { code: r.code, output: r.stdout + r.stderr };
  };
}

/** buildah with its own storage, killed after `limitMs` (a lingering RUN process can hold it). */
function buildahInvoke(limitMs: number) {
  return (b: HostileBuild): Promise<HostileOutcome> =>
    new Promise((resolve, reject) => {
      const store = join(b.context, '..', 'buildah');
      const child = spawn(
        'buildah',
        [
          '--root',
          join(store, 'root'),
          '--runroot',
          join(store, 'run'),
          '--storage-driver',
          'vfs',
          'build',
          '--isolation',
          'chroot',
          '--tls-verify=false',
          '--creds',
          `kiln:${PASSWORD}`,
          '--secret',
          `id=tok,src=${b.secretFile}`,
          '-f',
          b.dockerfile,
          b.context,
        ],
        {
          env: { ...process.env, ...b.env, KILN_REGISTRY_PASSWORD: PASSWORD },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, limitMs);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, output, timedOut });
      });
    });
}

/** Every attack reported, none escaped, every canary as it was. */
function assertContained(name: string, r: HostileReport): void {
  const out = r.outcome.output;
  assert.equal(r.outcome.code, 0, `${name}: the build must succeed\n${out.slice(-3000)}`);
  for (const a of ATTACKS) {
    const v = r.verdicts[a];
    assert.ok(v, `${name}: no verdict for ${a}\n${out.slice(-3000)}`);
    assert.equal(v.escaped, false, `${name}: ${a} escaped: ${v.detail}`);
  }
  assert.deepEqual(r.host, {
    hostnameKept: true,
    corePatternKept: true,
    canaryFileKept: true,
    canaryProcessAlive: true,
    noLingering: true,
  });
  assert.match(
    out,
    /RUN left a process running after its command ended: \/?hostile \(pid \d+/,
    'the lingering process is named',
  );
}

describe('hostile RUN steps', { skip: skip || undefined }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-hostile-'));
    await chmod(work, 0o755);
    reg = await startRegistry({ auth: 'htpasswd', users: { kiln: PASSWORD } });
    await pushBusyboxImage(reg, 'base/busybox', 'latest');
    base = `${reg.host}/base/busybox:latest`;
  });
  after(async () => {
    for (const line of reports) process.stdout.write(`# ${line}\n`);
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const suite = (name: string) => ({ dir: join(work, name), base, password: PASSWORD, dockerToken: TOKEN });

  // plain twice: /proc bound by PRoot (what auto takes here), and the bare chroot.
  const variants = [
    { rung: 'chroot', name: 'chroot', proc: undefined },
    { rung: 'plain', name: 'plain (PRoot /proc)', proc: 'proot' },
    { rung: 'plain', name: 'plain (bare chroot)', proc: 'none' },
  ] as const;
  for (const v of variants) {
    test(
      `kiln ${v.name} (as root): every attack fails, the host is unchanged`,
      { timeout: 300_000 },
      async () => {
        const env: Record<string, string> = v.proc ? { KILN_PLAIN_PROC: v.proc } : {};
        const r = await runHostileSuite(
          suite(`${v.rung}-${v.proc ?? 'ns'}`),
          kilnInvoke(v.rung, undefined, env),
        );
        reports.push(formatReport(`kiln ${v.name}`, r));
        assertContained(v.name, r);
        if (v.proc === 'proot') assert.match(r.outcome.output, /bound by PRoot/);
        if (v.proc === 'none') assert.match(r.outcome.output, /no \/proc \(bare chroot\)/);
        // Docker's a80425fb; plain without SYS_CHROOT, MKNOD, NET_RAW, KILL: a00005db.
        const expected = capMask(v.rung === 'plain' ? PLAIN_CAPS : DOCKER_DEFAULT_CAPS);
        assert.equal(expected, v.rung === 'plain' ? '00000000a00005db' : '00000000a80425fb');
        // PRoot mode sets no_new_privs (its seccomp filter needs it; setuid is moot under ptrace).
        const nnp = v.proc === 'proot' ? 1 : 0;
        assert.match(
          r.caps ?? '',
          new RegExp(`inh=0{16} prm=${expected} eff=${expected} bnd=${expected} amb=0{16} nnp=${nnp} uid=0`),
        );
      },
    );
  }

  test(
    `kiln rootless (as ${USER} with a subuid range): every attack fails, the host is unchanged`,
    { timeout: 300_000 },
    async (t) => {
      const forbidden = ensureSubidUser();
      if (forbidden) return t.skip(forbidden);
      const r = await runHostileSuite({ ...suite('rootless'), owner: USER }, kilnInvoke('rootless', USER));
      reports.push(formatReport('kiln rootless', r));
      assertContained('rootless', r);
      assert.match(r.caps ?? '', /prm=00000000a80425fb eff=00000000a80425fb bnd=00000000a80425fb amb=0{16}/);
    },
  );

  test(
    'buildah --isolation chroot, same program (reported, not asserted)',
    { timeout: 300_000 },
    async (t) => {
      if (!have('buildah')) return t.skip('no buildah');
      const r = await runHostileSuite(suite('buildah'), buildahInvoke(120_000));
      reports.push(formatReport('buildah chroot', r));
      assert.ok(
        Object.keys(r.verdicts).length >= 10,
        `buildah ran the attacks\n${r.outcome.output.slice(-3000)}`,
      );
    },
  );
});
