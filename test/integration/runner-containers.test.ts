/**
 * kiln in real runner containers (podman + runc, test/helpers/runner-container.ts), one per runner
 * setup kiln documents, run one after the other. In each: `kiln probe` prints its line; a first RUN
 * shows from inside what it got (pid namespace from NSpid, capabilities, no_new_privs, /proc), which
 * must be what the probe named; a corpus built with --reproducible (apt-get of packages with postinst
 * scripts from Debian's mirror, python3 multiprocessing, useradd + chown -R, a 2,000-file COPY) must
 * give the same image digest in every environment that builds it; a /proc corpus (ps, free, readlink
 * /proc/self/exe) builds where RUN has /proc and fails at its line where it has not. Where the probe
 * names a single-id map (the non-root pods) the corpus must fail at its apt-get line and a chown to
 * 1001 at its RUN (exit 7, the documented reason), and the single-id corpus must build with the base
 * layer blob as pulled and base owners kept in its RUN layer. Environments kiln cannot build in yet
 * would be `todo` with the reason they fail (none now). The hostile-RUN suite runs in every setup but
 * custom-seccomp (the same rung and mechanism as docker-default), host canaries compared.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pushDebianImage, DEBIAN_CACHE } from '../helpers/debian.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { RUNNER_ENVS, kilnInRunner, runnerRootfs } from '../helpers/runner-container.ts';
import { layerEntries, pulledLayers } from '../helpers/runner-env.ts';
import type { RunnerEnv } from '../helpers/runner-container.ts';
import { ATTACKS, formatReport, runHostileSuite } from '../helpers/hostile-run.ts';
import type { HostileBuild, HostileOutcome } from '../helpers/hostile-run.ts';

const isRoot = process.getuid?.() === 0;
const hasPodman = ['podman', 'runc'].every((t) => {
  try {
    execFileSync('sh', ['-c', `command -v ${t}`]);
    return true;
  } catch {
    return false;
  }
});
/** `KILN_RUNNER_ENVS=a,b` runs only those setups (the cases are slow; for iterating on one). */
const only = process.env.KILN_RUNNER_ENVS?.split(',').filter(Boolean);
const selected = (name: string) => !only?.length || only.includes(name);
const skip =
  (!isRoot && 'needs root (podman with runc)') || (!hasPodman && 'podman/runc missing') || undefined;

/** Setups kiln cannot build in yet, with why (README "What each runner needs" says the same). */
const KNOWN_FAILING: Record<string, string> = {};

const CORPUS = (base: string) => `FROM ${base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/ldconfig/aux-cache /var/log/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
RUN python3 -c 'import multiprocessing as m; assert m.Pool(2).map(abs, [-1, -2]) == [1, 2]' \\
 && find / -xdev -name __pycache__ -prune -exec rm -rf {} +
RUN useradd -m -u 1001 app && mkdir -p /srv/app && chown -R app:app /srv/app /home/app
COPY files/ /srv/app/files/
`;

/** The corpus as a single-id map lets it build: apt keeps root (APT::Sandbox::User), no useradd. */
const SINGLE_ID_CORPUS = (base: string) => `FROM ${base}
RUN apt-get -o APT::Sandbox::User=root update \\
 && DEBIAN_FRONTEND=noninteractive apt-get -o APT::Sandbox::User=root install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/ldconfig/aux-cache /var/log/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
RUN python3 -c 'import multiprocessing as m; assert m.Pool(2).map(abs, [-1, -2]) == [1, 2]' \\
 && find / -xdev -name __pycache__ -prune -exec rm -rf {} +
COPY files/ /srv/app/files/
RUN chmod 0600 /etc/gshadow && touch /var/mail/kiln
`;

const PROC_CORPUS = (base: string) => `FROM ${base}
RUN test "$(readlink /proc/self/exe)" = /usr/bin/readlink && grep -q '^MemTotal:' /proc/meminfo && test -d /proc/1
`;

const EVIDENCE = (base: string) => `FROM ${base}
RUN echo "EVIDENCE pid1=$(cat /proc/1/comm 2>/dev/null) $(grep -E '^(CapEff|NoNewPrivs):' /proc/self/status 2>/dev/null | tr '\\t\\n' '  ' || true) end"; test -e /proc/self || echo 'EVIDENCE no-proc'
`;

interface EnvOutcome {
  rung?: string;
  /** plain: PRoot or none; rootless: the container's /proc bound (a masked /proc forbids a fresh one). */
  proc?: 'proot' | 'none' | 'bound';
  /** rootless with a single-id map (README "Isolation": what that costs). */
  singleId?: boolean;
  digest?: string;
}

describe('kiln in runner containers', { skip, timeout: 30 * 60_000 }, () => {
  let reg: TestRegistry;
  let dir: string;
  let rootfs: string;
  let base: string;
  const outcomes = new Map<string, EnvOutcome>();

  before(async () => {
    await mkdir(DEBIAN_CACHE, { recursive: true });
    dir = await mkdtemp(join('/tmp', 'kiln-runner-ct-'));
    await chmod(dir, 0o755);
    reg = await startRegistry();
    await pushDebianImage(reg, 'base/debian', 'bookworm');
    base = `${reg.host}/base/debian:bookworm`;
    await pushBusyboxImage(reg, 'base/busybox', 'latest');
    rootfs = runnerRootfs(dir);
    await mkdir(join(dir, 'hostile'), { recursive: true });
    // The corpus contexts, readable by every container user.
    const files = join(dir, 'ctx', 'corpus', 'files');
    await mkdir(files, { recursive: true });
    for (let i = 0; i < 2000; i++) {
      const sub = join(files, `d${i % 20}`);
      if (i < 20) await mkdir(sub);
      await writeFile(join(sub, `f${i}.txt`), `file ${i}\n`);
    }
    await writeFile(join(dir, 'ctx', 'corpus', 'Dockerfile'), CORPUS(base));
    await mkdir(join(dir, 'ctx', 'corpus-single'), { recursive: true });
    await writeFile(join(dir, 'ctx', 'corpus-single', 'Dockerfile'), SINGLE_ID_CORPUS(base));
    execFileSync('cp', ['-a', files, join(dir, 'ctx', 'corpus-single', 'files')]);
    for (const [name, text] of [
      ['proc', PROC_CORPUS(base)],
      ['evidence', EVIDENCE(base)],
      ['chown', `FROM ${base}\nRUN mkdir /x && chown 1001:1001 /x\n`],
    ] as const) {
      await mkdir(join(dir, 'ctx', name), { recursive: true });
      await writeFile(join(dir, 'ctx', name, 'Dockerfile'), text);
    }
    execFileSync('chmod', ['-R', 'a+rX', join(dir, 'ctx')]);
  });

  after(async () => {
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const call = (env: RunnerEnv, work: string, vars: Record<string, string> = {}) => ({
    env,
    rootfs,
    work,
    share: [join(dir, 'ctx'), join(dir, 'hostile')],
    vars,
  });
  const build = (env: RunnerEnv, work: string, name: string, dest?: string) =>
    kilnInRunner(call(env, work), [
      'build',
      '-c',
      join(dir, 'ctx', name),
      ...(dest ? ['-d', dest, '--reproducible'] : ['--no-push']),
      '--insecure-registry',
      reg.host,
    ]);

  /**
   * The single-id corpus (apt told not to drop to _apt, no chown to other ids) builds; the image keeps
   * the base layer blob as pulled, and the owners a RUN layer carries for base files it only changed
   * (chmod of root:shadow /etc/gshadow, a new file in root:mail /var/mail) are the image's, not root.
   */
  const singleIdCorpus = async (env: RunnerEnv, work: string): Promise<string | undefined> => {
    const ref = `${reg.host}/corpus-single/${env.name}:1`;
    const r = await build(env, work, 'corpus-single', ref);
    assert.equal(r.code, 0, `${env.name}: single-id corpus:\n${r.stderr.slice(-4000)}`);
    const got = await mkdtemp(join(dir, 'pulled-'));
    for (const d of ['img', 'base']) await mkdir(join(got, d));
    const layers = await pulledLayers(ref, join(got, 'img'));
    const baseLayers = await pulledLayers(base, join(got, 'base'));
    assert.equal(
      layers[0]!.split('/').pop(),
      baseLayers[0]!.split('/').pop(),
      'the base layer blob as pulled',
    );
    const last = await layerEntries(layers.at(-1)!);
    const entry = (n: string) => last.find((e) => e.name.replace(/\/$/, '') === n);
    assert.deepEqual(
      ['etc/gshadow', 'var/mail', 'var/mail/kiln'].map((n) => [
        n,
        entry(n)?.uid,
        entry(n)?.gid,
        entry(n)?.mode,
      ]),
      [
        ['etc/gshadow', 0, 42, 0o600],
        ['var/mail', 0, 8, 0o2775],
        ['var/mail/kiln', 0, 0, 0o644],
      ],
    );
    await rm(got, { recursive: true, force: true });
    return /^(sha256:[0-9a-f]{64})$/m.exec(r.stdout)?.[1];
  };

  for (const env of RUNNER_ENVS.filter((e) => selected(e.name))) {
    const todo = KNOWN_FAILING[env.name];
    test(`${env.name}: probe names the rung the first RUN uses; the corpus builds`, { todo }, async (t) => {
      const work = join(dir, `work-${env.name}`);
      await mkdir(work, { recursive: true });
      const p = await kilnInRunner(call(env, work), ['probe']);
      const lines = p.stdout
        .split('\n')
        .filter((l) => /^[* ] (rootless|chroot|plain) /.test(l) || /^isolation:/.test(l));
      t.diagnostic(
        `${env.name} probe (exit ${p.code}):\n${lines.join('\n')}${p.code ? `\n${p.stderr.slice(-600)}` : ''}`,
      );
      assert.equal(p.code, 0, `${env.name}: kiln probe failed: ${p.stderr.slice(-2000)}`);
      const rung = /^isolation: (\S+)$/m.exec(p.stdout)?.[1];
      const chosen = p.stdout.split('\n').find((l) => l.startsWith('* ')) ?? '';
      const proc =
        rung === 'plain'
          ? /bound by PRoot/.test(chosen)
            ? 'proot'
            : 'none'
          : /\/proc is the container's, bound/.test(chosen)
            ? 'bound'
            : undefined;
      const singleId = rung === 'rootless' && /single-id map/.test(chosen);
      const o: EnvOutcome = {
        ...(rung ? { rung } : {}),
        ...(proc ? { proc } : {}),
        ...(singleId ? { singleId } : {}),
      };
      outcomes.set(env.name, o);

      // Evidence from inside the first RUN.
      const ev = await build(env, work, 'evidence');
      assert.equal(ev.code, 0, ev.stderr.slice(-3000));
      assert.match(ev.stderr, new RegExp(`^isolation: ${rung} \\(`, 'm'), 'the build uses the probed rung');
      const line = /^EVIDENCE (.*)$/m.exec(ev.stderr + ev.stdout)?.[1] ?? '';
      t.diagnostic(`${env.name} first RUN: ${line}`);
      if (proc === 'none') {
        assert.match(ev.stderr + ev.stdout, /^EVIDENCE no-proc$/m, 'bare chroot: no /proc');
      } else {
        // The namespaced rungs' RUN is in its own pid namespace, whose PID 1 is kiln's run init.
        const pid1 = /pid1=(\S*)/.exec(line)?.[1];
        const capEff = /CapEff:\s+([0-9a-f]+)/.exec(line)?.[1];
        if (rung === 'plain') {
          assert.notEqual(pid1, 'perl', `plain: the container's pid namespace: ${line}`);
          assert.equal(capEff, '00000000a00005db', line);
          assert.match(line, /NoNewPrivs:\s+1/);
        } else if (proc === 'bound') {
          // Its own pid namespace, but the /proc it sees is the container's: PID 1 there is the job.
          assert.equal(pid1, 'node', `${rung}: the container's /proc: ${line}`);
          assert.equal(capEff, '00000000a80425fb', line);
        } else {
          assert.equal(pid1, 'perl', `${rung}: own pid namespace: ${line}`);
          assert.equal(capEff, '00000000a80425fb', line);
        }
      }

      // The corpus, reproducibly, pushed; its digest is compared across environments below.
      const c = await build(env, work, 'corpus', `${reg.host}/corpus/${env.name}:1`);
      if (singleId) {
        // The documented reason: apt drops to its _apt sandbox user, which a single-id map cannot.
        assert.equal(c.code, 7, `${env.name}: the corpus fails in its RUN:\n${c.stderr.slice(-3000)}`);
        assert.match(c.stderr, /corpus\/Dockerfile:2: RUN/, 'at the apt-get line');
        const ch = await build(env, work, 'chown');
        assert.equal(ch.code, 7, `${env.name}: chown to an unmapped id fails in its RUN`);
        assert.match(ch.stderr, /chown\/Dockerfile:2: RUN/);
        o.digest = await singleIdCorpus(env, work);
      } else {
        assert.equal(c.code, 0, `${env.name}: corpus build failed:\n${c.stderr.slice(-4000)}`);
        o.digest = /^(sha256:[0-9a-f]{64})$/m.exec(c.stdout)?.[1];
      }
      assert.ok(o.digest, c.stdout);

      const pc = await build(env, work, 'proc');
      if (proc === 'none') {
        assert.notEqual(pc.code, 0, 'no /proc: the /proc corpus must fail');
        assert.match(pc.stderr, /Dockerfile:2: RUN/, 'failing at the /proc line');
      } else {
        assert.equal(pc.code, 0, pc.stderr.slice(-3000));
      }
    });
  }

  const built = () => [...outcomes.entries()].filter(([, o]) => o.digest);
  test('environments on the same rung and engine gave the same image digest', (t) => {
    const groups = new Map<string, Set<string>>();
    for (const [n, o] of built()) {
      const key = `${o.rung}${o.proc ? `/${o.proc}` : ''}${o.singleId ? '/single-id' : ''}`;
      t.diagnostic(`${n}: ${key} ${o.digest}`);
      groups.set(key, (groups.get(key) ?? new Set()).add(o.digest!));
    }
    if (!only?.length) assert.ok(built().length >= 3, `at least three environments built: ${built().length}`);
    for (const [key, set] of groups) assert.equal(set.size, 1, `${key}: one digest`);
  });

  // Across rungs and engines too (plain/walk, plain/PRoot, chroot/overlay): both snapshot engines
  // decide "changed" by one rule (src/fs/same-entry.ts). Single-id setups build their own corpus.
  test('every full-map environment that built the corpus gave the same image digest', (t) => {
    const full = built().filter(([, o]) => !o.singleId);
    for (const [n, o] of full) t.diagnostic(`${n}: ${o.rung}${o.proc ? `/${o.proc}` : ''} ${o.digest}`);
    if (!only?.length)
      assert.ok(full.length >= 3, `at least three full-map environments built: ${full.length}`);
    assert.equal(new Set(full.map(([, o]) => o.digest)).size, 1, 'one digest');
  });

  const hostileIn = [
    'docker-default',
    'docker-default-ptrace',
    'privileged',
    'k8s-restricted-subuid',
    'k8s-restricted',
    'openshift-readonly',
  ];
  for (const name of hostileIn.filter(selected)) {
    test(`hostile-RUN suite in ${name}: every attack fails, the host is unchanged`, async (t) => {
      const env = RUNNER_ENVS.find((e) => e.name === name)!;
      const bb = `${reg.host}/base/busybox:latest`;
      const invoke = async (b: HostileBuild): Promise<HostileOutcome> => {
        const work = join(dir, `hostile-work-${name}`);
        await mkdir(work, { recursive: true });
        execFileSync('chmod', ['-R', 'a+rX', join(dir, 'hostile')]);
        const r = await kilnInRunner(
          {
            ...call(env, work, {
              ...b.env,
              KILN_REGISTRY_USERNAME: 'kiln',
              KILN_REGISTRY_PASSWORD: 'runner-password-canary',
            }),
            timeoutMs: 240_000,
          },
          [
            'build',
            '-c',
            b.context,
            '-f',
            b.dockerfile,
            '--no-push',
            '--secret',
            `id=tok,src=${b.secretFile}`,
            '--insecure-registry',
            reg.host,
          ],
        );
        return { code: r.code, output: r.stdout + r.stderr };
      };
      const hdir = join(dir, 'hostile', name);
      const report = await runHostileSuite(
        { dir: hdir, base: bb, password: 'runner-password-canary', dockerToken: 'runner-docker-token' },
        invoke,
      );
      t.diagnostic(formatReport(`kiln in ${name}`, report));
      assert.equal(report.outcome.code, 0, report.outcome.output.slice(-3000));
      // The linger step's background process was named, then killed with its step.
      assert.match(
        report.outcome.output,
        /RUN left a process running after its command ended: \/?hostile \(pid \d+/,
      );
      for (const a of ATTACKS) {
        const v = report.verdicts[a];
        assert.ok(v, `no verdict for ${a}`);
        assert.equal(v.escaped, false, `${a} escaped: ${v.detail}`);
      }
      assert.deepEqual(report.host, {
        hostnameKept: true,
        corePatternKept: true,
        canaryFileKept: true,
        canaryProcessAlive: true,
        noLingering: true,
      });
      assert.ok(existsSync(hdir));
    });
  }
});
