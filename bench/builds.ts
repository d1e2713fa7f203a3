/**
 * Shared by the build scenarios: one cold kiln build and one cold buildah build + push of the same
 * context, both pushing to the bench registry, each under GNU time, with per-step timestamps taken
 * from their output lines.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchEnv } from './env.ts';
import { measure } from './measure.ts';
import type { Measurement } from './measure.ts';

export interface TimedLine {
  line: string;
  atMs: number;
}

export interface BuildRun {
  m: Measurement;
  lines: TimedLine[];
}

const REPO_ROOT = join(import.meta.dirname, '..');

/** buildah commits one layer per step with --layers (the image shape kiln makes); KILN_BENCH_BUILDAH_LAYERS=0 turns it off. */
export const BUILDAH_LAYERS = process.env.KILN_BENCH_BUILDAH_LAYERS !== '0';

/** `kiln build` of `ctx` pushed to `dest` on the bench registry, run from the bundle users run (bench.sh rebuilds dist/ from src first). */
export function kilnArgv(env: BenchEnv, ctx: string, dest: string, work: string, extra: string[]): string[] {
  return [
    'node',
    join(REPO_ROOT, 'dist/cli.js'),
    'build',
    '-c',
    ctx,
    '-d',
    dest,
    '--insecure-registry',
    env.reg.host,
    '--work-dir',
    work,
    ...extra,
  ];
}

export async function kilnBuild(
  env: BenchEnv,
  ctx: string,
  dest: string,
  extra: string[] = [],
): Promise<BuildRun> {
  const work = join(env.scratch, `kiln-work-${Date.now()}`);
  const lines: TimedLine[] = [];
  try {
    const m = await measure(
      'kiln build',
      kilnArgv(env, ctx, dest, work, ['-f', join(ctx, 'Dockerfile'), '-v', 'debug', ...extra]),
      { cwd: REPO_ROOT, onLine: (line, atMs) => lines.push({ line, atMs }) },
    );
    return { m, lines };
  } finally {
    // kiln leaves its work dir to a detached rm: let it finish before anything else is timed, so
    // that its disk traffic never lands in the next measurement (buildah's or kiln's own).
    for (let waited = 0; waited < 120_000; waited += 100) {
      if (!existsSync(work) || readdirSync(work).length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    rmSync(work, { recursive: true, force: true });
  }
}

/** A C-like source tree of `files` files (100 per directory) under ctx/src, as app contexts copy. */
export function writeSourceTree(ctx: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const dir = join(ctx, 'src', `pkg${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(dir, { recursive: true });
    const body = Array.from({ length: 40 }, (_, k) => `int f${i}_${k}(int x) { return x * ${k} + ${i}; }`);
    writeFileSync(join(dir, `mod${i}.c`), `/* module ${i} */\n${body.join('\n')}\n`);
  }
}

/** Runs per side for the build scenarios (KILN_BENCH_RUNS, default 3): this VM's disk is noisy. */
export const RUNS = Math.max(1, Math.floor(Number(process.env.KILN_BENCH_RUNS ?? '3')) || 3);

export interface PairedRuns {
  kiln: BuildRun[];
  ref: BuildRun[];
}

/**
 * kiln and buildah alternately, RUNS times each, same context, each pushing to its own tag; with
 * `platforms`, both build every platform in one run and push one index.
 */
export async function pairedBuilds(
  env: BenchEnv,
  ctx: string,
  name: string,
  platforms: string[] = [],
): Promise<PairedRuns> {
  const tag = Date.now().toString(36);
  const out: PairedRuns = { kiln: [], ref: [] };
  const kilnExtra = platforms.length ? ['--platform', platforms.join(',')] : [];
  for (let i = 0; i < RUNS; i++) {
    const k = await kilnBuild(env, ctx, `${env.reg.host}/bench/${name}-kiln:${tag}-${i}`, kilnExtra);
    if (k.m.exitCode !== 0) process.stderr.write(`[bench] kiln output tail:\n${tail(k.lines)}\n`);
    out.kiln.push(k);
    const r = await buildahBuild(env, ctx, `${env.reg.host}/bench/${name}-buildah:${tag}-${i}`, platforms);
    if (r.m.exitCode !== 0) process.stderr.write(`[bench] buildah output tail:\n${tail(r.lines)}\n`);
    out.ref.push(r);
  }
  return out;
}

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/**
 * One row per run and a median row, and the scenario's metrics; the headline ratio is
 * median(kiln) / median(buildah).
 */
export function pairedSummary(
  env: BenchEnv,
  p: PairedRuns,
  operation: string,
  extra: (k: BuildRun, r: BuildRun) => Record<string, string | number> = () => ({}),
): { rows: Array<Record<string, string | number>>; metrics: Record<string, number | string> } {
  const rows: Array<Record<string, string | number>> = p.kiln.map((k, i) => {
    const r = p.ref[i]!;
    return {
      operation: `${operation} #${i + 1}`,
      'kiln s': k.m.wallSeconds.toFixed(2) + (k.m.exitCode ? ' FAILED' : ''),
      'buildah s': r.m.wallSeconds.toFixed(2) + (r.m.exitCode ? ' FAILED' : ''),
      'kiln/ref': (k.m.wallSeconds / r.m.wallSeconds).toFixed(2),
      'kiln RSS MB': k.m.maxRssMb,
      'buildah RSS MB': r.m.maxRssMb,
      ...extra(k, r),
    };
  });
  const kilnS = median(p.kiln.map((k) => k.m.wallSeconds));
  const buildahS = median(p.ref.map((r) => r.m.wallSeconds));
  const kilnRssMb = Math.max(...p.kiln.map((k) => k.m.maxRssMb));
  rows.push({
    operation: `${operation}: median of ${p.kiln.length}`,
    'kiln s': kilnS.toFixed(2),
    'buildah s': buildahS.toFixed(2),
    'kiln/ref': (kilnS / buildahS).toFixed(2),
    'kiln RSS MB': kilnRssMb,
    'buildah RSS MB': Math.max(...p.ref.map((r) => r.m.maxRssMb)),
  });
  return {
    rows,
    metrics: {
      runs: p.kiln.length,
      kilnS,
      buildahS,
      ratio: Number((kilnS / buildahS).toFixed(2)),
      kilnRssMb,
      buildahDriver: env.buildahDriver,
      buildahLayers: String(BUILDAH_LAYERS),
      kilnExit: Math.max(...p.kiln.map((k) => k.m.exitCode)),
      buildahExit: Math.max(...p.ref.map((r) => r.m.exitCode)),
    },
  };
}

/**
 * buildah build + push; with `platforms`, `buildah build --platform a,b --manifest` (every platform
 * in one run, as buildah documents it) and `buildah manifest push --all` of the list.
 */
export async function buildahBuild(
  env: BenchEnv,
  ctx: string,
  dest: string,
  platforms: string[] = [],
): Promise<BuildRun> {
  const root = join(env.scratch, `buildah-${Date.now()}`);
  mkdirSync(root, { recursive: true });
  const g = `--root ${root}/root --runroot ${root}/run --storage-driver ${env.buildahDriver}`;
  const local = 'localhost/kiln-bench:latest';
  const build = `buildah ${g} build --isolation chroot ${BUILDAH_LAYERS ? '--layers' : '--layers=false'} --tls-verify=false -f ${ctx}/Dockerfile`;
  const script = platforms.length
    ? `${build} --platform ${platforms.join(',')} --manifest ${local} ${ctx} && ` +
      `buildah ${g} manifest push --all --tls-verify=false ${local} docker://${dest}`
    : `${build} -t ${local} ${ctx} && buildah ${g} push --tls-verify=false ${local} docker://${dest}`;
  const lines: TimedLine[] = [];
  try {
    const m = await measure('buildah build+push', ['sh', '-c', script], {
      onLine: (line, atMs) => lines.push({ line, atMs }),
    });
    return { m, lines };
  } finally {
    try {
      execFileSync('sh', ['-c', `buildah ${g} rm -a; buildah ${g} rmi -af`], { stdio: 'ignore' });
    } catch {
      // best effort: the directory goes anyway
    }
    execFileSync('sh', ['-c', `grep -o " ${root}[^ ]*" /proc/mounts | xargs -r -n1 umount -l || true`]);
    rmSync(root, { recursive: true, force: true });
  }
}

/** Seconds from the first line matching `start` to the first later line matching `end`, or NaN. */
export function stepSeconds(lines: TimedLine[], start: RegExp, end: RegExp): number {
  const i = lines.findIndex((l) => start.test(l.line));
  if (i < 0) return NaN;
  const j = lines.findIndex((l, k) => k > i && end.test(l.line));
  if (j < 0) return NaN;
  return Number(((lines[j]!.atMs - lines[i]!.atMs) / 1000).toFixed(2));
}

export function tail(lines: TimedLine[], n = 15): string {
  return lines
    .slice(-n)
    .map((l) => l.line)
    .join('\n');
}
