/**
 * Shared by the build scenarios: one cold kiln build and one cold buildah build + push of the same
 * context, both pushing to the bench registry, each under GNU time, with per-step timestamps taken
 * from their output lines.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
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

export async function kilnBuild(env: BenchEnv, ctx: string, dest: string): Promise<BuildRun> {
  const work = join(env.scratch, `kiln-work-${Date.now()}`);
  const lines: TimedLine[] = [];
  try {
    const m = await measure(
      'kiln build',
      [
        'node',
        // The bundle users run (the action, the runner image): bench.sh rebuilds it from src first.
        join(REPO_ROOT, 'dist/cli.js'),
        'build',
        '-c',
        ctx,
        '-f',
        join(ctx, 'Dockerfile'),
        '-d',
        dest,
        '--insecure-registry',
        env.reg.host,
        '--work-dir',
        work,
        '-v',
        'debug',
      ],
      { cwd: REPO_ROOT, onLine: (line, atMs) => lines.push({ line, atMs }) },
    );
    return { m, lines };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export async function buildahBuild(env: BenchEnv, ctx: string, dest: string): Promise<BuildRun> {
  const root = join(env.scratch, `buildah-${Date.now()}`);
  mkdirSync(root, { recursive: true });
  const g = `--root ${root}/root --runroot ${root}/run --storage-driver ${env.buildahDriver}`;
  const local = 'localhost/kiln-bench:latest';
  const script =
    `buildah ${g} build --isolation chroot ${BUILDAH_LAYERS ? '--layers' : '--layers=false'} --tls-verify=false ` +
    `-f ${ctx}/Dockerfile -t ${local} ${ctx} && buildah ${g} push --tls-verify=false ${local} docker://${dest}`;
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
