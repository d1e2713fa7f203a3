/**
 * Issue 4: a RUN that creates 20,000 small files (~200 MB of random data) on the debian base, then a RUN
 * that touches one of them. Cold kiln build + push vs cold buildah build + push to the same registry.
 * Reports both wall times, kiln/buildah, kiln's peak RSS, and for each engine the time of the second
 * RUN step (run + snapshot + layer), taken from the output lines' arrival times.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILDAH_LAYERS, buildahBuild, kilnBuild, stepSeconds, tail } from './builds.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';
import { ratio } from './measure.ts';

const FILES = 20_000;

export function treeDockerfile(base: string): string {
  return [
    `FROM ${base}`,
    `RUN mkdir -p /data && cd /data && i=0; while [ $i -lt ${FILES} ]; do ` +
      `d=d$((i / 500)); [ -d $d ] || mkdir $d; head -c 10000 /dev/urandom > $d/f$i; i=$((i + 1)); done`,
    'RUN touch /data/d0/f0',
    '',
  ].join('\n');
}

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const ctx = join(env.scratch, 'tree-ctx');
  mkdirSync(ctx, { recursive: true });
  writeFileSync(join(ctx, 'Dockerfile'), treeDockerfile(env.debian));
  const tag = Date.now().toString(36);

  const kiln = await kilnBuild(env, ctx, `${env.reg.host}/bench/tree-kiln:${tag}`);
  if (kiln.m.exitCode !== 0) process.stderr.write(`[bench] kiln output tail:\n${tail(kiln.lines)}\n`);
  const ref = await buildahBuild(env, ctx, `${env.reg.host}/bench/tree-buildah:${tag}`);
  if (ref.m.exitCode !== 0) process.stderr.write(`[bench] buildah output tail:\n${tail(ref.lines)}\n`);

  const kilnStep = stepSeconds(
    kiln.lines,
    /\] RUN touch \/data/,
    /layer sha256:|\] (RUN|COPY|FROM)|image digest/,
  );
  const refStep = stepSeconds(ref.lines, /STEP \d+\/\d+: RUN touch \/data/, /^--> /);
  const row = {
    operation: `build+push ${FILES} files`,
    'kiln s': kiln.m.wallSeconds.toFixed(2) + (kiln.m.exitCode ? ' FAILED' : ''),
    'buildah s': ref.m.wallSeconds.toFixed(2) + (ref.m.exitCode ? ' FAILED' : ''),
    'kiln/ref': ratio(kiln.m, ref.m),
    'kiln RSS MB': kiln.m.maxRssMb,
    'buildah RSS MB': ref.m.maxRssMb,
    'kiln 2nd RUN s': kilnStep,
    'buildah 2nd RUN s': refStep,
  };
  return {
    scenario: 'tree',
    rows: [row],
    metrics: {
      kilnS: kiln.m.wallSeconds,
      buildahS: ref.m.wallSeconds,
      ratio: ratio(kiln.m, ref.m),
      kilnRssMb: kiln.m.maxRssMb,
      kilnSecondRunS: kilnStep,
      buildahSecondRunS: refStep,
      buildahDriver: env.buildahDriver,
      buildahLayers: String(BUILDAH_LAYERS),
      kilnExit: kiln.m.exitCode,
      buildahExit: ref.m.exitCode,
    },
  };
}
