/**
 * Named build contexts (`--build-context`, build-push-action's `build-contexts`) through the CLI,
 * as BuildKit reads them: a directory for COPY --from and RUN --mount from=, an image for FROM and
 * COPY --from, winning over a stage of the same name; the directory's content keys the cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBusyboxRegistry } from '../helpers/busybox-registry.ts';
import { kiln, type CliResult } from '../helpers/cli.ts';

const fx = useBusyboxRegistry('kiln-build-context');
const isRoot = process.getuid?.() === 0;

function build(ctx: string, extra: string[]): Promise<CliResult> {
  return kiln([
    'build',
    '-c',
    ctx,
    '--no-push',
    '--insecure-registry',
    fx.reg.host,
    '--isolation',
    'chroot',
    ...extra,
  ]);
}

test(
  'a directory and an image as named contexts; the image overrides a stage of that name',
  { skip: !isRoot && 'needs root (chroot rung)', timeout: 240_000 },
  async () => {
    const ctx = join(fx.dir, 'ctx');
    const shared = join(fx.dir, 'shared');
    mkdirSync(ctx, { recursive: true });
    mkdirSync(join(shared, 'sub'), { recursive: true });
    writeFileSync(join(shared, 'sub', 'hello.txt'), 'from the named dir\n');
    writeFileSync(join(ctx, 'hello.txt'), 'from the main context\n');
    writeFileSync(
      join(ctx, 'Dockerfile'),
      [
        // Not pullable here (no Docker Hub): the build only works if `base` is the named image.
        'FROM alpine:3.20 AS base',
        'RUN exit 1',
        'FROM base',
        'COPY --from=shared /sub/hello.txt /from-dir.txt',
        'COPY --from=tools /bin/busybox /tools-busybox',
        'COPY hello.txt /main.txt',
        'RUN --mount=from=shared,target=/m cat /m/sub/hello.txt > /mounted.txt',
        'RUN [ "$(cat /from-dir.txt)" = "from the named dir" ] && [ "$(cat /mounted.txt)" = "from the named dir" ] ' +
          '&& [ "$(cat /main.txt)" = "from the main context" ] && cmp /tools-busybox /bin/busybox && echo named-ok',
      ].join('\n'),
    );
    const flags = [
      '--build-context',
      `base=docker-image://${fx.base}`,
      '--build-context',
      `tools=docker-image://${fx.base}`,
      '--build-context',
      `shared=${shared}`,
      '--cache-dir',
      join(fx.dir, 'cache'),
    ];
    const r1 = await build(ctx, flags);
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stderr, /named-ok/);
    assert.doesNotMatch(r1.stderr, /alpine/, 'the overridden stage is neither pulled nor built');

    // Unchanged: every step from the cache. Changed named dir: its COPY misses and sees the new file.
    const r2 = await build(ctx, flags);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, /COPY --from=shared \/sub\/hello.txt \/from-dir.txt +\S+ +hit/);
    writeFileSync(join(shared, 'sub', 'hello.txt'), 'changed\n');
    const r3 = await build(ctx, flags);
    assert.equal(r3.code, 7, 'the check RUN sees the changed file and fails');
    assert.match(r3.stderr, /COPY --from=shared[^\n]*cache miss/);
  },
);

test('named contexts kiln cannot read are refused with what to do', async () => {
  const ctx = join(fx.dir, 'refused');
  mkdirSync(ctx, { recursive: true });
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM shared\n');
  const cases: [string, number, RegExp][] = [
    [`shared=${ctx}`, 3, /FROM shared: the named context is a directory/],
    ['shared=oci-layout:///tmp/layout', 2, /oci-layout:\/\/ contexts are not supported/],
    ['shared=https://github.com/o/r.git', 2, /remote \(Git or HTTP\) named contexts are not supported/],
    [`shared=${join(ctx, 'missing')}`, 2, /is not a directory/],
    ['=x', 2, /not name=value/],
  ];
  for (const [spec, code, msg] of cases) {
    const r = await build(ctx, ['--build-context', spec]);
    assert.equal(r.code, code, `${spec}: ${r.stderr}`);
    assert.match(r.stderr, msg, spec);
  }
});
