/**
 * Issue 5: a typical app image on the debian base: apt-get install of two small packages, COPY of a
 * 5,000-file source tree, a build RUN (make), and a second stage copying the result. Cold kiln build
 * + push vs cold buildah build + push, same registry.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILDAH_LAYERS, pairedBuilds, pairedRows } from './builds.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';

const SOURCE_FILES = 5000;

export function writeContext(ctx: string, base: string): void {
  mkdirSync(ctx, { recursive: true });
  for (let i = 0; i < SOURCE_FILES; i++) {
    const dir = join(ctx, 'src', `pkg${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(dir, { recursive: true });
    const body = Array.from({ length: 40 }, (_, k) => `int f${i}_${k}(int x) { return x * ${k} + ${i}; }`);
    writeFileSync(join(dir, `mod${i}.c`), `/* module ${i} */\n${body.join('\n')}\n`);
  }
  writeFileSync(
    join(ctx, 'Makefile'),
    'dist/app.tar.bz2:\n\tmkdir -p dist\n\tfind src -type f | sort > dist/files.txt\n' +
      '\ttar -cjf dist/app.tar.bz2 src dist/files.txt\n',
  );
  writeFileSync(join(ctx, '.dockerignore'), 'Dockerfile\n');
  writeFileSync(
    join(ctx, 'Dockerfile'),
    [
      `FROM ${base} AS build`,
      'RUN apt-get update && apt-get install -y --no-install-recommends make bzip2 && rm -rf /var/lib/apt/lists/*',
      'WORKDIR /app',
      'COPY Makefile ./',
      'COPY src/ ./src/',
      'RUN make',
      `FROM ${base}`,
      'COPY --from=build /app/dist/ /app/',
      'CMD ["ls", "-l", "/app"]',
      '',
    ].join('\n'),
  );
}

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const ctx = join(env.scratch, 'app-ctx');
  writeContext(ctx, env.debian);
  const p = await pairedBuilds(env, ctx, 'app');
  const sum = pairedRows(p, `app: apt + COPY ${SOURCE_FILES} files + make + 2nd stage`);
  return {
    scenario: 'app',
    rows: sum.rows,
    metrics: {
      runs: p.kiln.length,
      kilnS: sum.kilnS,
      buildahS: sum.buildahS,
      ratio: sum.ratio,
      kilnRssMb: sum.kilnRssMb,
      buildahDriver: env.buildahDriver,
      buildahLayers: String(BUILDAH_LAYERS),
      kilnExit: Math.max(...p.kiln.map((k) => k.m.exitCode)),
      buildahExit: Math.max(...p.ref.map((r) => r.m.exitCode)),
    },
  };
}
