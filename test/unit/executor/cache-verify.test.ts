/**
 * Cached blobs are checked while the build goes on (CacheHit.verified, src/cache/local-store.ts):
 * a tree never takes a layer before its check, no image comes out before every check, and a blob
 * that proves corrupt (its entry dropped) makes the plan run again, that step then built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CacheHit } from '../../../src/cache/types.ts';
import { KilnError } from '../../../src/util/errors.ts';
import { fakeBuild, imageFiles, MemoryCache, tempDir } from './fakes.ts';

const BASE = { base: { files: { '/etc/os': 'fake' } } };
const DOCKERFILE = `FROM base
RUN write /deps.txt installed
COPY src.txt /app/src.txt
RUN write /app/built.txt done
`;

/** A MemoryCache whose hit for the first RUN's layer is checked slowly, and found corrupt if asked. */
class CheckingCache extends MemoryCache {
  checked: string[] = [];
  constructor(
    private readonly corrupt: boolean,
    private readonly events: string[],
  ) {
    super();
  }
  override async get(key: string): Promise<CacheHit | null> {
    const hit = await super.get(key);
    if (!hit || !hit.entry.createdBy?.includes('deps.txt') || this.checked.includes(key)) return hit;
    this.checked.push(key);
    const verified = (async () => {
      await sleep(80);
      this.events.push('checked');
      if (this.corrupt) {
        this.entries.delete(key);
        throw new KilnError('cache', 'CACHE_BLOB_CORRUPT', `cache: blob of ${key} is corrupt; rebuilding`);
      }
    })();
    verified.catch(() => undefined);
    return { ...hit, verified };
  }
}

async function warm(corrupt: boolean, events: string[]) {
  const dir = await tempDir();
  const cache = new CheckingCache(corrupt, events);
  await fakeBuild({ dockerfile: DOCKERFILE, files: { 'src.txt': 'v1' }, images: BASE, cache, dir });
  await writeFile(join(dir, 'ctx', 'src.txt'), 'v2');
  return { dir, cache };
}

test('a layer waits for its check before the tree takes it', async () => {
  const events: string[] = [];
  const { dir, cache } = await warm(false, events);
  const layer = [...cache.entries.values()].find((e) => e.entry.createdBy?.includes('deps.txt'))!;
  const r = await fakeBuild({
    dockerfile: DOCKERFILE,
    images: BASE,
    cache,
    dir,
    deps: { onExtract: (blob) => events.push(blob === layer.blobPath ? 'extract RUN layer' : 'extract') },
  });
  // The COPY missed, so the tree was made: its base at once, the cached RUN layer after its check.
  assert.deepEqual(events, ['extract', 'checked', 'extract RUN layer']);
  const files = await imageFiles(r.image);
  assert.equal(files['/deps.txt'], 'installed');
  assert.equal(files['/app/src.txt'], 'v2');
});

test('a blob found corrupt drops its entry and the plan runs again: that step is built', async () => {
  const events: string[] = [];
  const { dir, cache } = await warm(true, events);
  const r = await fakeBuild({ dockerfile: DOCKERFILE, images: BASE, cache, dir });
  assert.ok(
    r.log.some((l) => /is corrupt; rebuilding/.test(l)),
    r.log.join('\n'),
  );
  // The second run: the first RUN missed (its entry gone) and ran, as did the last one.
  const scripts = r.calls.runs.map((s) => s.argv.at(-1));
  assert.ok(scripts.includes('write /deps.txt installed'), scripts.join(' | '));
  const files = await imageFiles(r.image);
  assert.equal(files['/deps.txt'], 'installed');
  assert.equal(files['/app/built.txt'], 'done');
});

test('a fully cached build still waits for every check, and fails over to a rebuild', async () => {
  const events: string[] = [];
  const { dir, cache } = await warm(true, events);
  await writeFile(join(dir, 'ctx', 'src.txt'), 'v1');
  // Nothing misses, so no tree reads the corrupt layer: the end of the run finds it.
  const r = await fakeBuild({ dockerfile: DOCKERFILE, images: BASE, cache, dir });
  assert.ok(r.log.some((l) => /is corrupt/.test(l)));
  assert.ok(r.calls.runs.some((s) => s.argv.at(-1) === 'write /deps.txt installed'));
});
