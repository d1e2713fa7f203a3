/**
 * The isolation probe runs while the executor starts (src/late-isolation.ts): bases are resolved,
 * steps keyed and looked up in the cache meanwhile, and only what depends on the probe's choice (a
 * tree, a RUN, a snapshot, tree sharing) waits for it. Fake deps (fakes.ts) built on lateDeps.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fakeBuild, MemoryCache, tempDir } from './fakes.ts';
import { lateDeps, type BoundIsolation } from '../../../src/late-isolation.ts';
import { KilnError } from '../../../src/util/errors.ts';

const BASE = { base: { files: { '/etc/os': 'fake' } } };
const DOCKERFILE = `FROM base
RUN write /deps.txt installed
COPY src.txt /app/src.txt
RUN write /app/built.txt done
`;

/** A probe that finishes only when told to. */
function heldProbe(): { probe: Promise<void>; finish(): void; fail(e: Error): void } {
  let finish!: () => void;
  let fail!: (e: Error) => void;
  const probe = new Promise<void>((res, rej) => {
    finish = res;
    fail = rej;
  });
  // The builder hands its probe to lateDeps at once; fakeBuild only after writing the context.
  probe.catch(() => undefined);
  return { probe, finish, fail };
}

async function warmCache(dir: string, cache: MemoryCache): Promise<void> {
  await fakeBuild({ dockerfile: DOCKERFILE, files: { 'src.txt': 'v1' }, images: BASE, cache, dir });
}

describe('the isolation probe runs while the executor starts', () => {
  test('a fully cached build never waits for it', async () => {
    const dir = await tempDir();
    const cache = new MemoryCache();
    await warmCache(dir, cache);
    const held = heldProbe();
    const build = fakeBuild({
      dockerfile: DOCKERFILE,
      files: { 'src.txt': 'v1' },
      images: BASE,
      cache,
      dir,
      deps: { probe: held.probe },
    });
    const outcome = await Promise.race([build.then(() => 'built'), sleep(10_000).then(() => 'waited')]);
    assert.equal(outcome, 'built');
    const r = await build;
    assert.equal(r.calls.runs.length, 0);
    assert.equal(r.calls.extracted.length, 0);
  });

  test('a miss is keyed and looked up meanwhile; its tree and RUN wait for the probe', async () => {
    const dir = await tempDir();
    const cache = new MemoryCache();
    await warmCache(dir, cache);
    await writeFile(join(dir, 'ctx', 'src.txt'), 'v2');
    const held = heldProbe();
    const gets = cache.gets;
    const build = fakeBuild({
      dockerfile: DOCKERFILE,
      images: BASE,
      cache,
      dir,
      deps: { probe: held.probe },
    });
    // Every step up to the COPY is looked up (the RUN's hit, the COPY's miss) with the probe held.
    for (let i = 0; i < 200 && cache.gets - gets < 2; i++) await sleep(10);
    await sleep(50);
    assert.equal(cache.gets - gets, 2, 'the RUN and COPY lookups happened before the probe finished');
    const before = await Promise.race([build.then(() => 'built'), sleep(50).then(() => 'waiting')]);
    assert.equal(before, 'waiting');
    held.finish();
    const r = await build;
    // The COPY missed, so the tree was made (its cached RUN layer restored) and the last RUN ran.
    assert.equal(r.calls.runs.length, 1);
    assert.ok(r.calls.extracted.length >= 1);
  });

  test('a probe that fails fails the build that needs it, with its own error', async () => {
    const dir = await tempDir();
    const held = heldProbe();
    const build = fakeBuild({
      dockerfile: DOCKERFILE,
      files: { 'src.txt': 'v1' },
      images: BASE,
      dir,
      deps: { probe: held.probe },
    });
    held.fail(new KilnError('isolation', 'NO_ISOLATION', 'no sandbox works here'));
    await assert.rejects(build, (e: unknown) => e instanceof KilnError && e.code === 'NO_ISOLATION');
  });

  test('what depends on the choice cannot be read before it is made', async () => {
    const held = heldProbe();
    const bound: BoundIsolation = {
      sandbox: { rung: 'chroot', run: async () => ({ exitCode: 0, tail: [] }) },
      createSnapshotter: () => ({ engine: 'overlay', begin: async () => assert.fail('not begun') }),
      beginTreeSnapshot: async () => assert.fail('not begun'),
      extractLayer: async () => undefined,
      sharing: { linkBaseTrees: true },
    };
    const deps = lateDeps(
      held.probe.then(() => bound),
      { writeLayer: async () => assert.fail('no layer'), inflateLayer: async () => false },
    );
    const notReady = (e: unknown): boolean =>
      e instanceof KilnError && e.category === 'internal' && e.code === 'ISOLATION_NOT_READY';
    assert.throws(() => deps.sharing(), notReady);
    assert.throws(() => deps.sandbox.rung, notReady);
    assert.throws(() => deps.createSnapshotter('/r', '/s').engine, notReady);
    let ran = false;
    const run = deps.sandbox
      .run({ root: '/', argv: ['true'], env: [], cwd: '/', uid: 0, gid: 0 } as never)
      .then(() => (ran = true));
    await sleep(20);
    assert.equal(ran, false, 'a RUN waits for the probe');
    held.finish();
    await run;
    await deps.ready();
    assert.deepEqual(deps.sharing(), { linkBaseTrees: true });
    assert.equal(deps.sandbox.rung, 'chroot');
    assert.equal(deps.createSnapshotter('/r', '/s').engine, 'overlay');
  });
});
