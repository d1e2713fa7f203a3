/**
 * Issue 5: a typical app image on the debian base: apt-get install of two small packages, COPY of a
 * 5,000-file source tree, a build RUN (make), and a second stage copying the result. Cold kiln build
 * + push vs cold buildah build + push, same registry.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pairedBuilds, pairedSummary, writeSourceTree } from './builds.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';

export const SOURCE_FILES = 5000;

export function writeContext(ctx: string, base: string): void {
  mkdirSync(ctx, { recursive: true });
  writeSourceTree(ctx, SOURCE_FILES);
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
  const { rows, metrics } = pairedSummary(env, p, `app: apt + COPY ${SOURCE_FILES} files + make + 2nd stage`);
  return { scenario: 'app', rows, metrics };
}
