import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runCli } from '../../../src/cli/program.ts';

const DOCKERFILE = `# syntax=docker/dockerfile:1
ARG BASE=busybox:1.36
FROM \${BASE} AS deps
ARG VERSION=0.0
RUN echo "deps $VERSION"

FROM deps AS test
RUN false

FROM scratch AS final
COPY --from=deps /bin/busybox /busybox
LABEL version=\${VERSION:-none}
`;

async function ctx(dockerfile: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-plan-'));
  await writeFile(join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

test('kiln plan prints stages, the skipped stage, expansion and unused build args', async () => {
  const dir = await ctx(DOCKERFILE);
  let out = '';
  const code = await runCli(
    ['node', 'kiln', 'plan', '-c', dir, '--build-arg', 'VERSION=1.2', '--build-arg', 'UNUSED=x'],
    (s) => (out += s),
  );
  assert.equal(code, 0);
  assert.match(out, /stage 0 "deps" from busybox:1\.36/);
  assert.match(out, /\[skipped: not needed by the target\] stage 1 "test"/);
  assert.match(out, /build order: deps -> final/);
  assert.match(
    out,
    /LABEL version="none"/,
    'VERSION is not declared in the final stage, so the default applies',
  );
  assert.match(out, /RUN echo "deps \$VERSION"/, 'RUN text is left for the shell');
  assert.match(out, /build arg\(s\) UNUSED were passed but no ARG declares them/);
});

test('kiln build --dry-run with --target prints the pruned plan', async () => {
  const dir = await ctx(DOCKERFILE);
  let out = '';
  const code = await runCli(
    ['node', 'kiln', 'build', '--context', dir, '--target', 'test', '--dry-run'],
    (s) => (out += s),
  );
  assert.equal(code, 0);
  assert.match(out, /target: stage 1 "test"/);
  assert.match(out, /\[skipped: not needed by the target\] stage 2 "final"/);
});

test('a Dockerfile error exits 3 and names file, line and the fix', async () => {
  const dir = await ctx('FROM busybox\nRUNN echo hi\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'plan', '-c', dir], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 3);
  assert.match(r.stderr, /Dockerfile:2: unknown instruction "RUNN" \(did you mean RUN\?\)/);
});

test('an unknown target exits 2 and lists the stages', async () => {
  const dir = await ctx(DOCKERFILE);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'plan', '-c', dir, '--target', 'tset'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 2);
  assert.match(r.stderr, /target stage "tset" is not in .* \(did you mean test\?\)/);
});

test('a missing Dockerfile exits 4 with the paths looked at', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-plan-'));
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'plan', '-c', dir], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 4);
  assert.match(r.stderr, /Dockerfile not found/);
});
