/**
 * Stages FROM the same image share one extraction of it (hard-link clones with the overlay engine),
 * and stages whose layers never reach the image write none. Both are speed-ups that must not leak
 * one stage's changes into another, or into the image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBusyboxRegistry } from '../helpers/busybox-registry.ts';
import { kiln, type CliResult } from '../helpers/cli.ts';

const fx = useBusyboxRegistry('kiln-shared-base');

function build(extra: string[]): Promise<CliResult> {
  return kiln([
    'build',
    '-c',
    fx.dir,
    '--no-push',
    '--insecure-registry',
    fx.reg.host,
    '--isolation',
    'chroot',
    '-v',
    'debug',
    ...extra,
  ]);
}

test('stages from one base: extracted once, and no stage sees what another changed', async () => {
  const base = `${fx.reg.host}/base/busybox:latest`;
  writeFileSync(
    join(fx.dir, 'Dockerfile'),
    [
      `FROM ${base} AS a`,
      // In-place edits of files that every clone shares: append, chmod, touch, and a directory mode.
      'RUN echo changed-in-a >> /etc/passwd && chmod 700 /bin/busybox && touch -d 2001-01-01 /etc/group && chmod 700 /etc',
      // COPY writes straight into the stage tree (no snapshot): it must replace, not overwrite, a shared file.
      'COPY marker /etc/group',
      `FROM ${base} AS b`,
      // Ordered after a by this COPY, so a's changes are made before b looks.
      'COPY --from=a /etc/passwd /a-passwd',
      'COPY --from=a /etc/group /a-group',
      'RUN grep -c changed-in-a /etc/passwd > /count || true; stat -c %a /bin/busybox /etc > /modes; stat -c %Y /etc/group > /mtime; ' +
        'grep -c copied-in-a /etc/group > /scount || true',
      `FROM ${base}`,
      'COPY --from=b /a-passwd /a-group /count /scount /modes /mtime /',
      'RUN grep -q changed-in-a /a-passwd && [ "$(cat /count)" = 0 ] && ! grep -q changed-in-a /etc/passwd ' +
        '&& grep -q copied-in-a /a-group && [ "$(cat /scount)" = 0 ] && ! grep -q copied-in-a /etc/group ' +
        '&& [ "$(cat /modes)" = "$(stat -c %a /bin/busybox /etc)" ] && [ "$(cat /mtime)" != 978307200 ] ' +
        '&& [ "$(stat -c %a /bin/busybox)" = 755 ] && echo shared-base-ok | tee /ok',
    ].join('\n'),
  );
  writeFileSync(join(fx.dir, 'marker'), 'copied-in-a\n');
  const r = await build([]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /shared-base-ok/);
  assert.match(r.stderr, /direct change: apply/, 'COPY took the no-snapshot path');
  assert.equal(r.stderr.match(/extracted base \S+ in/g)?.length, 1, 'one extraction for three stages');
  // a and b feed the image only through COPY --from: their layers are never written.
  assert.match(r.stderr, /no layer written: stage a is not part of the image/);
  assert.match(r.stderr, /no layer written: stage b is not part of the image/);
  assert.doesNotMatch(r.stderr, /no layer written: stage 2 /);
  assert.match(r.stderr, /layers: +3\b/, 'base + COPY + RUN');
});

test('--target a stage: its layers are written', async () => {
  const r = await build(['--target', 'a']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /no layer written/);
  assert.match(r.stderr, /layers: +3\b/, 'base + RUN + COPY');
});
