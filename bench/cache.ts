/**
 * Issues 6 and 16: the layer cache where CI spends it. The app image of bench/app.ts (debian base,
 * apt-get install of make and bzip2, COPY of a 5,000-file source tree, a build RUN, a second stage
 * copying the result). Per alternation, each with a fresh cache: kiln cold, no-change, one source
 * file changed (extracted-tree store warm), and "cold runner" (the cache dir copied elsewhere with
 * its trees/ removed, as the Actions cache restores it, and another file changed); buildah with its
 * local layer cache (`buildah build --layers`, one storage root per alternation) cold, no-change,
 * one file changed. Both build and push to the bench registry.
 * KILN_BENCH_CACHE_SMALL=1: busybox base without apt (no network). KILN_BENCH_CACHE_PARTIAL=1 (the
 * `partial` scenario): busybox, a cached RUN writing 4,000 files, COPY of 3,000 files with one
 * changed, a short RUN.
 * Targets (issue 16): one file changed <= 0.30x kiln cold and <= 0.7x buildah's; cold runner <= 0.5x
 * kiln cold; partial one file <= 0.4x its cold.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { kilnArgv, median, RUNS, writeSourceTree } from './builds.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';
import { measure } from './measure.ts';
import type { Measurement } from './measure.ts';

const REPO_ROOT = join(import.meta.dirname, '..');

type Mode = 'app' | 'small' | 'partial';

function dockerfile(mode: Mode, base: string): string[] {
  if (mode === 'partial')
    return [
      `FROM ${base}`,
      'RUN mkdir -p /gen && cd /gen && i=0; while [ $i -lt 4000 ]; do echo $i > f$i; i=$((i+1)); done',
      'COPY src/ /app/src/',
      'RUN ls /app/src | wc -l > /app/count',
    ];
  return [
    `FROM ${base} AS build`,
    ...(mode === 'small'
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
  ];
}

function writeContext(ctx: string, mode: Mode, base: string): void {
  rmSync(ctx, { recursive: true, force: true });
  mkdirSync(ctx, { recursive: true });
  writeSourceTree(ctx, mode === 'partial' ? 3000 : 5000);
  writeFileSync(
    join(ctx, 'build.sh'),
    'set -e\nmkdir -p dist\nfind src -type f | sort > dist/files.txt\n' +
      (mode === 'app'
        ? 'tar -cjf dist/app.tar.bz2 src dist/files.txt\n'
        : 'tar -czf dist/app.tgz src dist/files.txt\n'),
  );
  writeFileSync(join(ctx, '.dockerignore'), 'Dockerfile\n');
  writeFileSync(join(ctx, 'Dockerfile'), [...dockerfile(mode, base), ''].join('\n'));
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

const PHASES = ['cold', 'no-change', 'one file changed', 'cold runner, one file changed'] as const;
type Phase = (typeof PHASES)[number];
type Runs = Record<Phase, Measurement[]>;
const emptyRuns = (): Runs => ({
  cold: [],
  'no-change': [],
  'one file changed': [],
  'cold runner, one file changed': [],
});

/** One alternation: kiln's four phases and buildah's three, each side with a fresh cache. */
async function alternation(env: BenchEnv, mode: Mode, ctx: string, i: number, kiln: Runs, buildah: Runs) {
  const changed = join(ctx, 'src', 'pkg7', 'mod700.c');
  const tag = `${Date.now().toString(36)}-${i}`;
  const cacheDir = join(env.scratch, `kiln-layer-cache-${tag}`);
  const runner = join(env.scratch, `kiln-cold-runner-${tag}`);
  const broot = join(env.scratch, `buildah-cache-${tag}`);
  mkdirSync(broot, { recursive: true });
  try {
    for (const [p, phase] of PHASES.entries()) {
      if (p >= 2)
        writeFileSync(changed, `/* module 700, edit ${tag}-${p} */\nint edited(void) { return ${p}; }\n`);
      let dir = cacheDir;
      if (phase === 'cold runner, one file changed') {
        // What an ephemeral runner gets back from the CI cache: the blobs and entries, no trees.
        // Copied without trees/ rather than copied then removed: removing its 20,000 copied inodes
        // made the next 30 s of file creation here 5-10x slower (ext4 without a journal skips
        // recently deleted inodes, scanning each: `recently_deleted` in perf), for kiln alone.
        const trees = join(cacheDir, 'trees');
        cpSync(cacheDir, runner, { recursive: true, filter: (src) => src !== trees });
        dir = runner;
      }
      process.stderr.write(
        `[bench] cache (${mode}) #${i + 1}: ${phase} (load ${loadavg()[0]!.toFixed(1)})\n`,
      );
      const dest = (who: string): string => `${env.reg.host}/bench/cache-${mode}-${who}:${tag}-${p}`;
      kiln[phase].push(await kilnRun(env, ctx, dir, dest('kiln'), `kiln ${phase}`));
      if (phase !== 'cold runner, one file changed')
        buildah[phase].push(await buildahRun(env, ctx, broot, dest('buildah'), `buildah ${phase}`));
    }
  } finally {
    cleanupBuildah(broot);
    rmSync(cacheDir, { recursive: true, force: true });
    rmSync(runner, { recursive: true, force: true });
  }
}

const secs = (ms: Measurement[]): string =>
  ms.map((m) => m.wallSeconds.toFixed(2) + (m.exitCode ? '!' : '')).join(' / ');
const med = (ms: Measurement[]): number => median(ms.map((m) => m.wallSeconds));
const r3 = (a: number, b: number): number => (b > 0 ? Number((a / b).toFixed(3)) : NaN);
const target = (v: number, max: number): string => (v <= max ? `met (<=${max})` : `MISSED (<=${max})`);

export async function runMode(env: BenchEnv, mode: Mode): Promise<ScenarioResult> {
  const ctx = join(env.scratch, `cache-ctx-${mode}`);
  writeContext(ctx, mode, mode === 'app' ? env.debian : env.busybox);
  const kiln = emptyRuns();
  const buildah = emptyRuns();
  const load0 = loadavg()[0]!;
  for (let i = 0; i < RUNS; i++) await alternation(env, mode, ctx, i, kiln, buildah);
  const kc = med(kiln.cold);
  const rows = PHASES.map((phase) => ({
    build: phase,
    'kiln s (every run)': secs(kiln[phase]),
    'kiln median s': med(kiln[phase]).toFixed(2),
    'buildah s (every run)': buildah[phase].length ? secs(buildah[phase]) : '-',
    'buildah median s': buildah[phase].length ? med(buildah[phase]).toFixed(2) : '-',
    'kiln/buildah': buildah[phase].length ? r3(med(kiln[phase]), med(buildah[phase])) : '-',
    'kiln/kiln cold': r3(med(kiln[phase]), kc),
    'kiln RSS MB': Math.max(...kiln[phase].map((m) => m.maxRssMb)),
  }));
  const one = med(kiln['one file changed']);
  const coldRunner = med(kiln['cold runner, one file changed']);
  const all = [...Object.values(kiln), ...Object.values(buildah)].flat();
  const metrics: Record<string, number | string> = {
    runs: RUNS,
    loadAtStart: Number(load0.toFixed(2)),
    loadAtEnd: Number(loadavg()[0]!.toFixed(2)),
    kilnColdS: kc,
    kilnNoChangeS: med(kiln['no-change']),
    kilnOneFileS: one,
    kilnColdRunnerOneFileS: coldRunner,
    buildahColdS: med(buildah.cold),
    buildahNoChangeS: med(buildah['no-change']),
    buildahOneFileS: med(buildah['one file changed']),
    oneFileVsCold: r3(one, kc),
    oneFileVsBuildah: r3(one, med(buildah['one file changed'])),
    coldRunnerVsCold: r3(coldRunner, kc),
    buildahDriver: env.buildahDriver,
    failures: all.filter((m) => m.exitCode !== 0).length,
  };
  if (mode === 'partial') metrics.targetOneFileVsCold = target(r3(one, kc), 0.4);
  else {
    metrics.targetOneFileVsCold = target(r3(one, kc), 0.3);
    metrics.targetOneFileVsBuildah = target(r3(one, med(buildah['one file changed'])), 0.7);
    metrics.targetColdRunnerVsCold = target(r3(coldRunner, kc), 0.5);
  }
  return { scenario: mode === 'partial' ? 'partial' : 'cache', rows, metrics };
}

export function run(env: BenchEnv): Promise<ScenarioResult> {
  return runMode(env, process.env.KILN_BENCH_CACHE_SMALL === '1' ? 'small' : 'app');
}

export function runPartial(env: BenchEnv): Promise<ScenarioResult> {
  return runMode(env, 'partial');
}

// `node --import tsx bench/cache.ts` (scripts/bench.sh cache): this scenario alone, with its own env.
if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const { startBenchEnv } = await import('./env.ts');
  const { printScenario } = await import('./measure.ts');
  const env = await startBenchEnv();
  try {
    printScenario(await run(env));
  } finally {
    await env.stop();
  }
}
