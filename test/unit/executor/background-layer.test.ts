/**
 * A COPY's layer is written in the background (src/executor/stage-builder.ts, changeKnown): the next
 * RUN on the overlay engine runs meanwhile, while its snapshot, any step that changes the tree, the
 * cache entry and the image wait for the layer. Fake deps (fakes.ts) with an event log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { fakeBuild, imageFiles, layerFiles, MemoryCache, OWN, tempDir } from './fakes.ts';

const BASE = { base: { files: { '/etc/os': 'fake' } } };
const DOCKERFILE = `FROM base
COPY --chown=${OWN} a.txt /app/a.txt
RUN write /out.txt x
`;

test('overlay engine: the next RUN runs while the COPY layer is written; its snapshot waits for that layer', async () => {
  const events: string[] = [];
  let runStarted!: () => void;
  const started = new Promise<void>((r) => (runStarted = r));
  const r = await fakeBuild({
    dockerfile: DOCKERFILE,
    files: { 'a.txt': 'A' },
    images: BASE,
    onRun: () => {
      events.push('run');
      runStarted();
    },
    deps: {
      engine: 'overlay',
      events,
      // The COPY's layer is held until the RUN has started: a builder that waited for the layer
      // before the RUN would never start it (then the hold gives up after 10 s and the order shows it).
      beforeLayer: async (diff) => {
        if (diff.changed.includes('/app/a.txt'))
          await Promise.race([started, sleep(10_000).then(() => events.push('gave up waiting'))]);
      },
    },
  });
  assert.deepEqual(events, [
    'layer /app/a.txt',
    'run',
    'layer done /app/a.txt',
    'snapshot finish',
    'layer /out.txt',
    'layer done /out.txt',
  ]);
  const files = await imageFiles(r.image);
  assert.equal(files['/app/a.txt'], 'A');
  assert.equal(files['/out.txt'], 'x');
  // The COPY's layer is in its place: base, COPY, RUN; diff ids in the same order.
  assert.equal(r.image.layers.length, 3);
  assert.deepEqual(
    r.image.config.rootfs.diff_ids,
    r.image.layers.map((l) => l.diffId),
  );
  assert.ok(r.image.layers.every((l) => /^sha256:[0-9a-f]{64}$/.test(l.descriptor.digest)));
  assert.ok(r.log.some((l) => /direct change: layer \d+ ms \(while the next steps went on\)/.test(l)));
});

test('walk engine (RUN writes the tree in place): the RUN starts only after the COPY layer is written', async () => {
  const events: string[] = [];
  await fakeBuild({
    dockerfile: DOCKERFILE,
    files: { 'a.txt': 'A' },
    images: BASE,
    onRun: () => events.push('run'),
    deps: { engine: 'walk', events, beforeLayer: () => sleep(50) },
  });
  assert.deepEqual(events.slice(0, 3), ['layer /app/a.txt', 'layer done /app/a.txt', 'run']);
});

test('a COPY over the path an earlier COPY wrote waits for that layer, which keeps the first content', async () => {
  const r = await fakeBuild({
    dockerfile: `FROM base
COPY --chown=${OWN} a.txt /app/x
ENV K=v
COPY --chown=${OWN} b.txt /app/x
`,
    files: { 'a.txt': 'A', 'b.txt': 'B' },
    images: BASE,
    // Slow layer writes: a second COPY that did not wait would replace /app/x before the first
    // layer read it.
    deps: { engine: 'overlay', beforeLayer: () => sleep(100) },
  });
  assert.equal(r.image.layers.length, 3);
  assert.equal((await layerFiles(r.image.layers[1]!.path!))['/app/x'], 'A');
  assert.equal((await layerFiles(r.image.layers[2]!.path!))['/app/x'], 'B');
  // History in step order, the ENV between the two COPYs.
  const steps = (r.image.config.history ?? []).map((h) => h.created_by ?? '');
  assert.deepEqual(
    steps.slice(1).map((s) => s.replace(/^\/bin\/sh -c #\(nop\) /, '').split(' ')[0]),
    ['COPY', 'ENV', 'COPY'],
  );
});

test('the cache entry of a background COPY layer names that layer; a rebuild hits every step with the same digests', async () => {
  const cache = new MemoryCache();
  const dir = await tempDir();
  const build = () =>
    fakeBuild({
      dockerfile: DOCKERFILE,
      files: { 'a.txt': 'A' },
      images: BASE,
      cache,
      dir,
      deps: { engine: 'overlay', beforeLayer: () => sleep(20) },
    });
  const cold = await build();
  const copyLayer = cold.image.layers[1]!;
  const stored = [...cache.entries.values()].map((e) => e.entry.layer?.digest);
  assert.ok(stored.includes(copyLayer.descriptor.digest), 'the COPY entry holds the COPY layer');
  assert.ok(stored.includes(cold.image.layers[2]!.descriptor.digest), 'the RUN entry holds the RUN layer');
  const warm = await build();
  assert.deepEqual(
    warm.image.steps.filter((s) => /^(COPY|RUN)/.test(s.instruction)).map((s) => s.cache),
    ['hit', 'hit'],
  );
  assert.deepEqual(
    warm.image.layers.map((l) => l.descriptor.digest),
    cold.image.layers.map((l) => l.descriptor.digest),
  );
});

test('a background layer write that fails fails the build with its error, and nothing more is written', async () => {
  const written: string[] = [];
  await assert.rejects(
    fakeBuild({
      dockerfile: DOCKERFILE + 'COPY --chown=' + OWN + ' a.txt /later\n',
      files: { 'a.txt': 'A' },
      images: BASE,
      deps: {
        engine: 'overlay',
        beforeLayer: async (diff) => {
          written.push(diff.changed.at(-1) ?? '');
          if (diff.changed.includes('/app/a.txt')) throw new Error('disk full while writing the COPY layer');
        },
      },
    }),
    /disk full while writing the COPY layer/,
  );
  assert.deepEqual(written, ['/app/a.txt']);
});
