/**
 * A stage that reads another gets its base tree cloned from the tree store while the stage it reads
 * is built, once that stage has missed (src/executor/base-prefetch.ts); it takes the clone only when
 * no cached layer is queued before its first tree-touching step. Fake deps with a real TreeStore.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TreeStore } from '../../../src/cache/tree-store.ts';
import { fakeBuild, imageFiles, MemoryCache, tempDir, type FakeBuild } from './fakes.ts';

const BASE = {
  base: { files: { '/etc/os': 'fake', '/usr/bin/tool': 'tool' } },
  builder: { files: { '/etc/os': 'builder' } },
};

async function setup(dockerfile: string) {
  const dir = await tempDir();
  const cache = new MemoryCache();
  const trees = new TreeStore({
    dir: join(dir, 'trees'),
    identity: 'unit',
    maxBytes: 1 << 30,
    debug: () => undefined,
  });
  const build = (over: Partial<FakeBuild> = {}) =>
    fakeBuild({ dockerfile, images: BASE, cache, dir, deps: { trees }, ...over });
  return { dir, build };
}

const TWO_STAGES = `FROM base AS build
COPY src.txt /src.txt
RUN write /out.txt built
FROM base
COPY --from=build /out.txt /app/out.txt
`;

test('the final stage takes its base tree prefetched while the build stage ran', async () => {
  const { dir, build } = await setup(TWO_STAGES);
  // A cold build too: the build stage keeps its base tree as soon as it is extracted.
  const first = await build({ files: { 'src.txt': 'v1' } });
  assert.match(first.log.join('\n'), /\[1\] base tree taken from the prefetch/);

  await writeFile(join(dir, 'ctx', 'src.txt'), 'v2');
  const second = await build();
  const log = second.log.join('\n');
  assert.match(log, /\[1\] base tree prefetched in \d+ ms/);
  assert.match(log, /\[1\] base tree taken from the prefetch/);
  // The image is what it would be without: the base's files, the built file.
  const files = await imageFiles(second.image);
  assert.equal(files['/app/out.txt'], 'built');
  assert.equal(files['/etc/os'], 'fake');

  // No miss, nothing to warm.
  const third = await build();
  assert.ok(!third.log.some((l) => /prefetch/.test(l)), third.log.join('\n'));
});

test('a stage with a cached layer before its first tree-touching step leaves the prefetch unused', async () => {
  const { dir, build } = await setup(`FROM base AS build
COPY src.txt /src.txt
RUN write /out.txt built
FROM base
RUN write /etc/extra cached
COPY --from=build /out.txt /app/out.txt
`);
  await build({ files: { 'src.txt': 'v1' } });
  await writeFile(join(dir, 'ctx', 'src.txt'), 'v2');
  const second = await build();
  const log = second.log.join('\n');
  assert.match(log, /\[1\] base tree prefetched/);
  assert.doesNotMatch(log, /taken from the prefetch/);
  const files = await imageFiles(second.image);
  assert.equal(files['/etc/extra'], 'cached');
  assert.equal(files['/app/out.txt'], 'built');
});

test('a base no stage kept yet is extracted, cloned and kept by the prefetch', async () => {
  const { dir, build } = await setup(`FROM builder AS build
COPY src.txt /src.txt
RUN write /out.txt built
FROM base
COPY --from=build /out.txt /app/out.txt
`);
  const first = await build({ files: { 'src.txt': 'v1' } });
  let log = first.log.join('\n');
  assert.match(log, /extracted base base in/);
  assert.match(log, /\[1\] base tree prefetched/);
  assert.match(log, /\[1\] base tree taken from the prefetch/);
  assert.equal((await imageFiles(first.image))['/etc/os'], 'fake');
  // Kept by the prefetch: the next build clones it from the store, extracting nothing.
  await writeFile(join(dir, 'ctx', 'src.txt'), 'v2');
  const second = await build();
  log = second.log.join('\n');
  assert.doesNotMatch(log, /extracted base base in/);
  assert.match(log, /\[1\] base tree taken from the prefetch/);
  const files = await imageFiles(second.image);
  assert.equal(files['/etc/os'], 'fake');
  assert.equal(files['/app/out.txt'], 'built');
});
