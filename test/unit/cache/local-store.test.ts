/**
 * The directory cache's blob checks (src/cache/local-store.ts): a blob is hashed when it is not the
 * very file last checked (verified/<hex>), and a blob changed in place is still caught.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCacheStore } from '../../../src/cache/local-store.ts';
import type { CacheEntry } from '../../../src/cache/types.ts';
import { KilnError } from '../../../src/util/errors.ts';

async function storeWithBlob(): Promise<{ root: string; dir: string; entry: CacheEntry; blob: string }> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-store-'));
  const data = randomBytes(200_000);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const src = join(root, 'layer');
  await writeFile(src, data);
  const entry = {
    version: 1,
    key: 'k'.repeat(64),
    createdBy: 'RUN x',
    layer: { digest, diffId: digest, size: data.length, mediaType: 'application/vnd.oci.image.layer.v1.tar' },
  } as unknown as CacheEntry;
  const dir = join(root, 'cache');
  await mkdir(dir);
  await new LocalCacheStore(dir, { ttlHours: 24 }).put(entry, src);
  return { root, dir, entry, blob: join(dir, 'blobs', digest.slice(7)) };
}

test('a blob checked before is not hashed again by the next build; a copied cache dir is', async () => {
  const { root, dir, entry } = await storeWithBlob();
  try {
    // put() wrote it from a layer of known digest: the next build trusts the mark.
    const next = new LocalCacheStore(dir, { ttlHours: 24 });
    assert.ok(await next.get(entry.key));
    assert.equal(next.hashed, 0);
    const again = new LocalCacheStore(dir, { ttlHours: 24 });
    assert.ok(await again.get(entry.key));
    assert.equal(again.hashed, 0, 'the mark survives the LRU touch of the previous hit');
    // What a CI cache restore gives: the same bytes in new files. Hashed once, then marked.
    const copy = join(root, 'restored');
    await cp(dir, copy, { recursive: true });
    const restored = new LocalCacheStore(copy, { ttlHours: 24 });
    const hit = await restored.get(entry.key);
    assert.ok(hit?.verified, 'the hit says its blob is still being checked');
    await hit.verified;
    assert.equal(restored.hashed, 1);
    const later = new LocalCacheStore(copy, { ttlHours: 24 });
    assert.ok(await later.get(entry.key));
    assert.equal(later.hashed, 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a blob changed in place (same size) is hashed, found corrupt (CACHE_BLOB_CORRUPT) and dropped', async () => {
  const { root, dir, entry, blob } = await storeWithBlob();
  try {
    const bytes = await readFile(blob);
    bytes[1000] = (bytes[1000] ?? 0) ^ 0xff;
    await writeFile(blob, bytes);
    const store = new LocalCacheStore(dir, { ttlHours: 24 });
    const hit = await store.get(entry.key);
    assert.equal(store.hashed, 1);
    await assert.rejects(
      hit!.verified!,
      (e: unknown) =>
        e instanceof KilnError && e.code === 'CACHE_BLOB_CORRUPT' && /is corrupt/.test(e.message),
    );
    // Dropped: the next lookup misses, and the step is built again.
    assert.equal(await store.get(entry.key), null);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
