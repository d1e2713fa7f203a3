/**
 * Issue 4: a RUN that creates 20,000 small files (~200 MB of random data) on the debian base, then a RUN
 * that touches one of them. The files are cut by `split` (40 directories of 500 files of 10,000 bytes)
 * rather than by a shell loop with one `head` per file: on a small VM each of those 20,000 fork+execs
 * costs 9-18 ms in both builders alike, which buried the builders' own work (a first version of this
 * benchmark spent ~300 of its ~330 s there). Cold kiln build + push vs cold buildah build + push to the same registry.
 * Reports both wall times, kiln/buildah, kiln's peak RSS, and for each engine the time of the second
 * RUN step (run + snapshot + layer), taken from the output lines' arrival times.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median, pairedBuilds, pairedSummary, stepSeconds, type BuildRun } from './builds.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';

const FILES = 20_000;

export function treeDockerfile(base: string): string {
  return [
    `FROM ${base}`,
    `RUN mkdir -p /data && cd /data && for d in $(seq 0 ${FILES / 500 - 1}); do mkdir d$d && ` +
      `head -c ${500 * 10_000} /dev/urandom | (cd d$d && split -b 10000 -d -a 3 - f); done`,
    'RUN touch /data/d0/f000',
    '',
  ].join('\n');
}

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const ctx = join(env.scratch, 'tree-ctx');
  mkdirSync(ctx, { recursive: true });
  writeFileSync(join(ctx, 'Dockerfile'), treeDockerfile(env.debian));
  const p = await pairedBuilds(env, ctx, 'tree');
  const kilnStep = (k: BuildRun): number =>
    stepSeconds(k.lines, /\] RUN touch \/data/, /layer sha256:|\] (RUN|COPY|FROM)|image digest/);
  const refStep = (r: BuildRun): number => stepSeconds(r.lines, /STEP \d+\/\d+: RUN touch \/data/, /^--> /);
  const { rows, metrics } = pairedSummary(env, p, `build+push ${FILES} files`, (k, r) => ({
    'kiln 2nd RUN s': kilnStep(k),
    'buildah 2nd RUN s': refStep(r),
  }));
  return {
    scenario: 'tree',
    rows,
    metrics: {
      ...metrics,
      kilnSecondRunS: median(p.kiln.map(kilnStep)),
      buildahSecondRunS: median(p.ref.map(refStep)),
    },
  };
}
