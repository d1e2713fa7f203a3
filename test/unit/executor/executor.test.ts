/**
 * executePlan with fake deps (test/unit/executor/fakes.ts) and the real plan, step modules, copy
 * rules and cache keys: stage order and parallelism, COPY --from between stages, target pruning,
 * which stages write layers, ONBUILD, cache hits, misses and lazy restores, step reports, and
 * --single-snapshot. No root needed: owners are the test's own ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../../../src/util/errors.ts';
import { fakeBuild, imageFiles, layerFiles, MemoryCache, OWN, tempDir } from './fakes.ts';

const scripts = (r: { calls: { runs: { argv: string[] }[] } }): string[] =>
  r.calls.runs.map((s) => s.argv[s.argv.length - 1]!);

test('stages run in dependency order; COPY --from reads an earlier stage; only image stages write layers', async () => {
  const r = await fakeBuild({
    dockerfile: `FROM scratch AS lib
RUN write /lib/a.so libA
FROM scratch AS tool
RUN write /bin/tool T
FROM scratch
COPY --chown=${OWN} --from=lib /lib/a.so /usr/lib/
COPY --chown=${OWN} --from=tool /bin/tool /usr/bin/tool
`,
  });
  assert.deepEqual(scripts(r).sort(), ['write /bin/tool T', 'write /lib/a.so libA']);
  // The two builder stages are not part of the image: their RUNs make no layer blob.
  assert.equal(r.calls.layersWritten.length, 2);
  assert.equal(r.image.layers.length, 2);
  const files = await imageFiles(r.image);
  assert.equal(files['/usr/lib/a.so'], 'libA');
  assert.equal(files['/usr/bin/tool'], 'T');
  assert.equal(files['/lib/a.so'], undefined);
  // One report per FROM and per instruction, none cached.
  assert.deepEqual(
    r.image.steps.map((s) => `${s.stage}:${s.line}:${s.cache}`).sort(),
    ['0:1:none', '0:2:none', '1:3:none', '1:4:none', '2:5:none', '2:6:none', '2:7:none']
      .map((x) => x.replace(/^0/, 'lib').replace(/^1/, 'tool'))
      .sort(),
  );
});

test('a stage FROM an earlier stage inherits its layers, config and tree', async () => {
  const r = await fakeBuild({
    dockerfile: `FROM base AS one
ENV A=1
RUN write /one.txt 1
FROM one
RUN write /two.txt 2
`,
    images: { base: { files: { '/etc/os': 'fake' }, config: { Env: ['PATH=/bin'] } } },
  });
  assert.equal(r.image.layers.length, 3);
  const files = await imageFiles(r.image);
  assert.deepEqual([files['/etc/os'], files['/one.txt'], files['/two.txt']], ['fake', '1', '2']);
  assert.ok(r.image.config.config?.Env?.includes('A=1'));
  // The second RUN saw the first one's file: its layer holds only its own change.
  assert.deepEqual(Object.keys(await layerFiles(r.image.layers[2]!.path!)), ['/two.txt']);
  assert.deepEqual(r.image.baseImages.length, 1);
});

test('--target prunes stages the target does not need', async () => {
  const r = await fakeBuild({
    dockerfile: `FROM scratch AS a
RUN write /a A
FROM scratch AS b
RUN write /b B
FROM a AS c
RUN write /c C
`,
    target: 'c',
  });
  assert.deepEqual(scripts(r), ['write /a A', 'write /c C']);
  assert.ok(!r.image.steps.some((s) => s.stage === 'b'));
});

test('independent stages run at the same time', async () => {
  // Each RUN waits for the other stage's signal: built one after the other, this never finishes.
  const r = await Promise.race([
    fakeBuild({
      dockerfile: `FROM scratch AS a
RUN signal a; await b; write /a A
FROM scratch AS b
RUN signal b; await a; write /b B
FROM scratch
COPY --chown=${OWN} --from=a /a /a
COPY --chown=${OWN} --from=b /b /b
`,
    }),
    new Promise<never>((_, rej) =>
      setTimeout(() => rej(new Error('stages ran one after the other')), 10_000),
    ),
  ]);
  assert.equal((await imageFiles(r.image))['/b'], 'B');
});

test('ONBUILD triggers of the base image run first, and are not inherited', async () => {
  const r = await fakeBuild({
    dockerfile: 'FROM base\nRUN write /after.txt done\n',
    images: { base: { files: {}, config: { OnBuild: ['RUN write /trigger.txt fired', 'ENV T=1'] } } },
  });
  assert.deepEqual(scripts(r), ['write /trigger.txt fired', 'write /after.txt done']);
  assert.equal(r.image.config.config?.OnBuild, null);
  assert.ok(r.image.config.config?.Env?.includes('T=1'));
  assert.deepEqual(
    r.image.steps.map((s) => s.instruction),
    ['FROM base', 'ONBUILD RUN write /trigger.txt fired', 'ONBUILD ENV T=1', 'RUN write /after.txt done'],
  );
});

test('a failing RUN stops the build with a KilnError at its line', async () => {
  await assert.rejects(
    fakeBuild({ dockerfile: 'FROM scratch\nRUN write /x 1\nRUN fail\n' }),
    (e: unknown) => e instanceof KilnError && e.code === 'RUN_FAILED' && e.position?.line === 3,
  );
});

const CACHED = `FROM base AS gen
RUN write /gen.txt generated
FROM base
COPY --chown=${OWN} a.txt /app/a.txt
WORKDIR /app
RUN write /app/run.txt ran
COPY --chown=${OWN} --from=gen /gen.txt /app/gen.txt
ENV DONE=1
`;
const BASE = { base: { files: { '/etc/os': 'fake' } } };

test('cache: cold build misses, rebuild hits everywhere without running or writing anything', async () => {
  const cache = new MemoryCache();
  const dir = await tempDir();
  const cold = await fakeBuild({ dockerfile: CACHED, files: { 'a.txt': 'A1' }, images: BASE, cache, dir });
  const cachedSteps = (s: { instruction: string }): boolean => /^(RUN|COPY|WORKDIR)/.test(s.instruction);
  assert.deepEqual(
    cold.image.steps.filter(cachedSteps).map((s) => [s.cache, s.cacheReason]),
    Array(5).fill(['miss', 'not built before']),
  );
  // With the cache on every stage writes layers (the gen stage's too: it is stored); WORKDIR /app
  // already existed (COPY made it), so it is an empty layer.
  assert.equal(cold.calls.layersWritten.length, 4);

  const warm = await fakeBuild({ dockerfile: CACHED, files: { 'a.txt': 'A1' }, images: BASE, cache, dir });
  assert.deepEqual(
    warm.image.steps.filter(cachedSteps).map((s) => s.cache),
    Array(5).fill('hit'),
  );
  assert.equal(warm.calls.runs.length, 0);
  assert.equal(warm.calls.layersWritten.length, 0);
  // Every step hit: the base tree is never extracted, nor any cached layer.
  assert.equal(warm.calls.extracted.length, 0);
  assert.deepEqual(
    warm.image.layers.map((l) => l.descriptor.digest),
    cold.image.layers.map((l) => l.descriptor.digest),
  );
  assert.deepEqual(warm.image.config.rootfs, cold.image.config.rootfs);
  // A hit on WORKDIR restores the config change too.
  assert.equal(warm.image.config.config?.WorkingDir, '/app');
});

test('cache: a changed source misses from its step on, and a later step restores cached layers first', async () => {
  const cache = new MemoryCache();
  const dir = await tempDir();
  await fakeBuild({ dockerfile: CACHED, files: { 'a.txt': 'A1' }, images: BASE, cache, dir });
  const df = CACHED.replace('COPY --chown', 'COPY --chown').replace(
    'ENV DONE=1',
    'RUN write /app/last.txt L',
  );
  const b = await fakeBuild({ dockerfile: df, files: { 'a.txt': 'A1' }, images: BASE, cache, dir });
  const last = b.image.steps.at(-1)!;
  assert.equal(last.cache, 'miss');
  assert.equal(last.cacheReason, 'not built before');
  // The RUN needed the real tree: the base layer, then the 3 cached layers of the earlier hits (the
  // WORKDIR hit had none); the gen stage hit throughout and is never extracted.
  assert.equal(b.calls.extracted.length, 1 + 3);
  const seen = await readFile(join(b.calls.runs[0]!.root, 'app', 'gen.txt'), 'utf8');
  assert.equal(seen, 'generated');

  const changed = await fakeBuild({ dockerfile: CACHED, files: { 'a.txt': 'A2' }, images: BASE, cache, dir });
  const own = changed.image.steps.filter((s) => s.stage === '1' && s.cache !== 'none');
  assert.deepEqual(
    own.map((s) => s.cache),
    ['miss', 'miss', 'miss', 'miss'],
  );
  assert.equal(own[0]!.cacheReason, 'source files changed');
  assert.equal(own[1]!.cacheReason, 'an earlier step or the base image changed');
  // The gen stage did not change: it hit, and COPY --from made its cached layer real to read it.
  assert.equal(
    changed.image.steps.find((s) => s.stage === 'gen' && s.instruction.startsWith('RUN'))!.cache,
    'hit',
  );
  assert.equal((await imageFiles(changed.image))['/app/gen.txt'], 'generated');
  assert.equal((await imageFiles(changed.image))['/app/a.txt'], 'A2');
});

test('cache: a build arg changes the key of the RUN that can see it, not of the steps before', async () => {
  const cache = new MemoryCache();
  const dir = await tempDir();
  const df = `FROM scratch\nRUN write /x 1\nARG V\nRUN write /y 2\n`;
  await fakeBuild({ dockerfile: df, cache, dir, opts: { buildArgs: { V: '1' } } });
  const b = await fakeBuild({ dockerfile: df, cache, dir, opts: { buildArgs: { V: '2' } } });
  assert.deepEqual(
    b.image.steps.filter((s) => s.cache !== 'none').map((s) => [s.cache, s.cacheReason]),
    [
      ['hit', undefined],
      ['miss', 'build args or environment changed'],
    ],
  );
});

test('cache: --cache-run-layers=false runs RUN steps uncached and keeps COPY cached', async () => {
  const cache = new MemoryCache();
  const dir = await tempDir();
  const df = `FROM scratch\nCOPY --chown=${OWN} a.txt /a\nRUN write /r 1\n`;
  const opts = {
    cache: {
      enabled: true,
      ttlHours: 1,
      treeStoreMiB: 0,
      copyLayers: true,
      runLayers: false,
      noPushCache: false,
    },
  };
  await fakeBuild({ dockerfile: df, files: { 'a.txt': 'a' }, cache, dir, opts });
  const b = await fakeBuild({ dockerfile: df, files: { 'a.txt': 'a' }, cache, dir, opts });
  assert.deepEqual(
    b.image.steps.map((s) => s.cache),
    ['none', 'hit', 'none'],
  );
  assert.equal(b.calls.runs.length, 1);
});

test('--single-snapshot: base layers plus exactly one layer with every file of the build', async () => {
  const r = await fakeBuild({
    dockerfile: `FROM base
COPY --chown=${OWN} a.txt /app/a.txt
COPY --chown=${OWN} b.txt /app/b.txt
RUN write /app/run.txt ran; rm /etc/old
ENV X=1
`,
    files: { 'a.txt': 'A', 'b.txt': 'B' },
    images: { base: { files: { '/etc/os': 'fake', '/etc/old': 'gone' } } },
    opts: { singleSnapshot: true },
  });
  assert.equal(r.image.layers.length, 2);
  assert.equal(r.calls.layersWritten.length, 1);
  assert.equal(r.calls.treeSnapshots, 1);
  const layer = await layerFiles(r.image.layers[1]!.path!);
  assert.deepEqual(
    Object.entries(layer)
      .filter(([, c]) => c !== null)
      .sort(),
    [
      ['/app/a.txt', 'A'],
      ['/app/b.txt', 'B'],
      ['/app/run.txt', 'ran'],
      ['/etc/old', 'WHITEOUT'],
    ],
  );
  // diff_ids and non-empty history entries agree: one per layer.
  assert.equal(r.image.config.rootfs.diff_ids.length, 2);
  assert.equal(r.image.config.history!.filter((h) => !h.empty_layer).length, 2);
  assert.match(r.image.config.history!.at(-1)!.created_by!, /single snapshot/);
});

test('--single-snapshot: a build that never touches the filesystem adds no layer', async () => {
  const r = await fakeBuild({
    dockerfile: 'FROM base\nENV X=1\nLABEL a=b\n',
    images: { base: { files: { '/etc/os': 'fake' } } },
    opts: { singleSnapshot: true },
  });
  assert.equal(r.image.layers.length, 1);
  assert.equal(r.calls.treeSnapshots, 0);
  assert.equal(r.calls.extracted.length, 0);
});

test('without --single-snapshot the same build has one layer per filesystem step', async () => {
  const r = await fakeBuild({
    dockerfile: `FROM base\nCOPY --chown=${OWN} a.txt /a\nCOPY --chown=${OWN} b.txt /b\nRUN write /c c\n`,
    files: { 'a.txt': 'A', 'b.txt': 'B' },
    images: { base: { files: { '/etc/os': 'fake' } } },
  });
  assert.equal(r.image.layers.length, 4);
  assert.equal(r.calls.treeSnapshots, 0);
});

test('a failing stage stops the stages that need it; a stage already running finishes', async () => {
  const seen: string[] = [];
  const r = fakeBuild({
    onRun: (script) => seen.push(script),
    dockerfile: `FROM scratch AS a
RUN await b-started; fail
FROM scratch AS b
RUN signal b-started; write /b B
FROM a
RUN write /never N
FROM b
COPY --chown=${OWN} --from=2 /never /x
`,
  });
  await assert.rejects(r, (e: unknown) => e instanceof KilnError && e.code === 'RUN_FAILED');
  // b ran to its end; the stage FROM a, and the target after it, never started.
  assert.deepEqual(seen.sort(), ['await b-started; fail', 'signal b-started; write /b B']);
});
