/**
 * Issue 6: the layer cache. The app image of bench/app.ts (debian base, apt-get install of make and
 * bzip2, COPY of a 5,000-file source tree, a build RUN, a second stage copying the result); with
 * KILN_BENCH_CACHE_SMALL=1 the same on busybox without the apt step. Three builds each, in the same
 * run: cold, no-change rebuild, one source file changed. kiln with --cache-dir vs buildah with its
 * local layer cache (`buildah build --layers`, one storage root kept across its three builds); both
 * build and push to the bench registry.
 * Targets: kiln no-change <= 0.2x kiln cold and <= 0.5x buildah no-change; one-file change <= 0.5x
 * kiln cold.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kilnArgv, writeSourceTree } from './builds.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';
import { measure } from './measure.ts';
import type { Measurement } from './measure.ts';

const SOURCE_FILES = 5000;
const REPO_ROOT = join(import.meta.dirname, '..');

/** KILN_BENCH_CACHE_SMALL=1: busybox base, no apt (no network needed, faster). */
const SMALL = process.env.KILN_BENCH_CACHE_SMALL === '1';

function writeContext(ctx: string, base: string): void {
  mkdirSync(ctx, { recursive: true });
  writeSourceTree(ctx, SOURCE_FILES);
  writeFileSync(
    join(ctx, 'build.sh'),
    'set -e\nmkdir -p dist\nfind src -type f | sort > dist/files.txt\n' +
      (SMALL
        ? 'tar -czf dist/app.tgz src dist/files.txt\n'
        : 'tar -cjf dist/app.tar.bz2 src dist/files.txt\n'),
  );
  writeFileSync(join(ctx, '.dockerignore'), 'Dockerfile\n');
  writeFileSync(
    join(ctx, 'Dockerfile'),
    [
      `FROM ${base} AS build`,
      ...(SMALL
        ? []
        : [
            'RUN apt-get update && apt-get install -y --no-install-recommends make bzip2 && rm -rf /var/lib/apt/lists/*',
          ]),
      'WORKDIR /app',
      'COPY build.sh ./',
      'COPY src/ ./src/',
      'RUN sh build.sh',
      `FROM ${base}`,
      'COPY --from=build /app/dist/ /app/',
      'CMD ["ls", "-l", "/app"]',
      '',
    ].join('\n'),
  );
}

function kilnRun(
  env: BenchEnv,
  ctx: string,
  cacheDir: string,
  dest: string,
  label: string,
): Promise<Measurement> {
  const work = join(env.scratch, `kiln-cache-work-${Date.now()}`);
  return measure(label, kilnArgv(env, ctx, dest, work, ['--cache-dir', cacheDir]), {
    cwd: REPO_ROOT,
  }).finally(() => rmSync(work, { recursive: true, force: true }));
}

function buildahRun(
  env: BenchEnv,
  ctx: string,
  root: string,
  dest: string,
  label: string,
): Promise<Measurement> {
  const g = `--root ${root}/root --runroot ${root}/run --storage-driver ${env.buildahDriver}`;
  const local = 'localhost/kiln-bench-cache:latest';
  const script =
    `buildah ${g} build --isolation chroot --layers --tls-verify=false ` +
    `-f ${ctx}/Dockerfile -t ${local} ${ctx} && buildah ${g} push --tls-verify=false ${local} docker://${dest}`;
  return measure(label, ['sh', '-c', script]);
}

function cleanupBuildah(root: string): void {
  const g = `--root ${root}/root --runroot ${root}/run`;
  try {
    execFileSync('sh', ['-c', `buildah ${g} rm -a; buildah ${g} rmi -af`], { stdio: 'ignore' });
  } catch {
    // best effort: the directory goes anyway
  }
  execFileSync('sh', ['-c', `grep -o " ${root}[^ ]*" /proc/mounts | xargs -r -n1 umount -l || true`]);
  rmSync(root, { recursive: true, force: true });
}

const s = (m: Measurement): string => m.wallSeconds.toFixed(2) + (m.exitCode ? ' FAILED' : '');
const r = (a: Measurement, b: Measurement): number =>
  b.wallSeconds > 0 ? Number((a.wallSeconds / b.wallSeconds).toFixed(3)) : NaN;

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const ctx = join(env.scratch, 'cache-ctx');
  writeContext(ctx, SMALL ? env.busybox : env.debian);
  const changed = join(ctx, 'src', 'pkg7', 'mod700.c');
  const tag = Date.now().toString(36);
  const cacheDir = join(env.scratch, 'kiln-layer-cache');
  const broot = join(env.scratch, `buildah-cache-${tag}`);
  mkdirSync(broot, { recursive: true });

  const kiln: Measurement[] = [];
  const buildah: Measurement[] = [];
  try {
    const phases = ['cold', 'no-change', 'one file changed'] as const;
    for (const [i, phase] of phases.entries()) {
      if (i === 2)
        writeFileSync(changed, `/* module 700, edited ${tag} */\nint edited(void) { return 1; }\n`);
      process.stderr.write(`[bench] cache: ${phase}\n`);
      kiln.push(
        await kilnRun(env, ctx, cacheDir, `${env.reg.host}/bench/cache-kiln:${tag}-${i}`, `kiln ${phase}`),
      );
      buildah.push(
        await buildahRun(
          env,
          ctx,
          broot,
          `${env.reg.host}/bench/cache-buildah:${tag}-${i}`,
          `buildah ${phase}`,
        ),
      );
    }
  } finally {
    cleanupBuildah(broot);
  }
  const [kc, kn, k1] = kiln as [Measurement, Measurement, Measurement];
  const [bc, bn, b1] = buildah as [Measurement, Measurement, Measurement];
  const rows = [
    { build: 'cold', 'kiln s': s(kc), 'buildah s': s(bc), 'kiln/buildah': r(kc, bc), 'kiln/kiln cold': 1 },
    {
      build: 'no-change',
      'kiln s': s(kn),
      'buildah s': s(bn),
      'kiln/buildah': r(kn, bn),
      'kiln/kiln cold': r(kn, kc),
    },
    {
      build: 'one file changed',
      'kiln s': s(k1),
      'buildah s': s(b1),
      'kiln/buildah': r(k1, b1),
      'kiln/kiln cold': r(k1, kc),
    },
  ];
  const metrics = {
    kilnColdS: kc.wallSeconds,
    kilnNoChangeS: kn.wallSeconds,
    kilnOneFileS: k1.wallSeconds,
    buildahColdS: bc.wallSeconds,
    buildahNoChangeS: bn.wallSeconds,
    buildahOneFileS: b1.wallSeconds,
    noChangeVsCold: r(kn, kc),
    noChangeVsBuildah: r(kn, bn),
    oneFileVsCold: r(k1, kc),
    targetNoChangeVsCold: r(kn, kc) <= 0.2 ? 'met (<=0.2)' : 'MISSED (<=0.2)',
    targetNoChangeVsBuildah: r(kn, bn) <= 0.5 ? 'met (<=0.5)' : 'MISSED (<=0.5)',
    targetOneFileVsCold: r(k1, kc) <= 0.5 ? 'met (<=0.5)' : 'MISSED (<=0.5)',
    buildahDriver: env.buildahDriver,
    failures: [...kiln, ...buildah].filter((m) => m.exitCode !== 0).length,
  };
  return { scenario: 'cache', rows, metrics };
}

// `node --import tsx bench/cache.ts` (scripts/bench.sh cache): this scenario alone, with its own env.
if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const { startBenchEnv } = await import('./env.ts');
  const { printScenario } = await import('./measure.ts');
  const env = await startBenchEnv();
  try {
    const res = await run(env);
    printScenario(res);
  } finally {
    await env.stop();
  }
}
