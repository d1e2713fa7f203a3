import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBusyboxRegistry } from '../helpers/busybox-registry.ts';
import { kiln } from '../helpers/cli.ts';

const fx = useBusyboxRegistry('kiln-parallel');

test('independent stages overlap in time; the stage the target does not need never runs', async () => {
  const base = `${fx.reg.host}/base/busybox:latest`;
  // Each stage records system uptime (shared across PID namespaces) when its RUN starts and ends.
  const stage = (n: string): string =>
    `FROM ${base} AS ${n}\nRUN cut -d' ' -f1 /proc/uptime > /${n}.start && sleep 2 && cut -d' ' -f1 /proc/uptime > /${n}.end`;
  writeFileSync(
    join(fx.dir, 'Dockerfile'),
    [
      stage('a'),
      stage('b'),
      `FROM ${base} AS never\nRUN echo this stage must not run && exit 1`,
      `FROM ${base}`,
      'COPY --from=a /a.start /a.end /',
      'COPY --from=b /b.start /b.end /',
      // Overlap: each started before the other ended.
      `RUN awk -v as=$(cat /a.start) -v ae=$(cat /a.end) -v bs=$(cat /b.start) -v be=$(cat /b.end) 'BEGIN { exit !(as < be && bs < ae) }'`,
    ].join('\n'),
  );
  const r = await kiln([
    'build',
    '-c',
    fx.dir,
    '--no-push',
    '--insecure-registry',
    fx.reg.host,
    '--isolation',
    'chroot',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /this stage must not run/);
  assert.doesNotMatch(r.stderr, /\[never\]/);
});
