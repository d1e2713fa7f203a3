/**
 * The cache in a directory (what CI caches save and restore as an opaque folder):
 *   entries/<key>.json   one CacheEntry per step key
 *   blobs/<hex>          compressed layers, named by digest
 *   slots/<slot>.json    the last key parts per step position, to explain misses
 *   verified/<hex>       which file a blob was when its digest was last checked
 * Every write goes to a temp name and is renamed into place, so two builds sharing the directory
 * never see half a file. A blob whose content no longer matches its digest is ignored (and its
 * entry dropped), so the step runs and rewrites it.
 */
import { createReadStream, type BigIntStats } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { CacheEntry, CacheHit, KeyParts, LayerCache } from './types.ts';
import { digestHex } from '../image/digest.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';

async function atomicWrite(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

export interface LocalStoreOptions {
  ttlHours: number;
  /** Prune least-recently-used blobs beyond this many bytes. */
  maxSizeBytes?: number;
  logger?: Logger;
}

/**
 * What a blob file is: device, inode, size and change time. Any write to it, and any copy or restore
 * of the cache dir (new inodes), changes this; only kiln's own touch (utimes, for LRU) does too, and
 * the mark is renewed after it.
 */
function fileIdentity(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.ctimeNs}`;
}

export class LocalCacheStore implements LayerCache {
  private readonly verified = new Set<string>();
  /** Blobs whose digest this store computed (tests read it). */
  hashed = 0;

  constructor(
    readonly dir: string,
    private readonly opts: LocalStoreOptions,
  ) {}

  private entryPath(key: string): string {
    return join(this.dir, 'entries', `${key}.json`);
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', digestHex(digest));
  }

  private markPath(digest: string): string {
    return join(this.dir, 'verified', digestHex(digest));
  }

  /**
   * Whether the blob is the very file whose digest was checked last: hashing a 35 MB apt layer on
   * every hit took 100-200 ms of each rebuild. A blob changed in place or restored from a CI cache is
   * hashed again; a disk that flips bits without a write is not caught here (nor by containerd's
   * content store), but by the registry, which checks every blob pushed.
   */
  private async marked(digest: string, st: BigIntStats): Promise<boolean> {
    const mark = await readFile(this.markPath(digest), 'utf8').catch(() => '');
    return mark === fileIdentity(st);
  }

  private async mark(digest: string, blob: string): Promise<void> {
    const st = await stat(blob, { bigint: true }).catch(() => null);
    if (!st) return;
    await mkdir(join(this.dir, 'verified'), { recursive: true });
    await atomicWrite(this.markPath(digest), fileIdentity(st)).catch(() => undefined);
  }

  async get(key: string): Promise<CacheHit | null> {
    const p = this.entryPath(key);
    const st = await stat(p).catch(() => null);
    if (!st) return null;
    if (Date.now() - st.mtimeMs > this.opts.ttlHours * 3600_000) return null;
    let entry: CacheEntry;
    try {
      entry = JSON.parse(await readFile(p, 'utf8')) as CacheEntry;
    } catch {
      await rm(p, { force: true });
      return null;
    }
    if (entry.version !== 1 || entry.key !== key) return null;
    if (!entry.layer) return { entry, from: 'dir' };
    const digest = entry.layer.digest;
    const blob = this.blobPath(digest);
    const bst = await stat(blob, { bigint: true }).catch(() => null);
    if (!bst || bst.size !== BigInt(entry.layer.size)) return null;
    const now = new Date();
    await utimes(p, now, now).catch(() => undefined);
    if (this.verified.has(blob) || (await this.marked(digest, bst))) {
      this.verified.add(blob);
      await utimes(blob, now, now).catch(() => undefined);
      await this.mark(digest, blob);
      return { entry, blobPath: blob, from: 'dir' };
    }
    // Checked while the build goes on keying and looking up the next steps (a 35 MB apt layer took
    // 150-270 ms to hash): whoever reads the blob waits for this first.
    const verified = this.verify(digest, blob, p, now);
    verified.catch(() => undefined);
    return { entry, blobPath: blob, from: 'dir', verified };
  }

  /** Hashes the blob; marks it verified, or drops it and its entry and rejects. */
  private async verify(digest: string, blob: string, entryPath: string, now: Date): Promise<void> {
    this.hashed++;
    if ((await sha256File(blob)) !== digest) {
      await rm(blob, { force: true });
      await rm(this.markPath(digest), { force: true });
      await rm(entryPath, { force: true });
      throw new KilnError(
        'cache',
        'CACHE_BLOB_CORRUPT',
        `cache: blob ${digest} is corrupt; ignoring it and rebuilding the step`,
        { hint: 'nothing to do: the entry is dropped and the step built again' },
      );
    }
    this.verified.add(blob);
    await utimes(blob, now, now).catch(() => undefined);
    await this.mark(digest, blob);
  }

  async put(entry: CacheEntry, blobPath?: string): Promise<void> {
    await mkdir(join(this.dir, 'entries'), { recursive: true });
    if (entry.layer) {
      if (!blobPath) throw new Error('cache put: layer without blob');
      await mkdir(join(this.dir, 'blobs'), { recursive: true });
      const dest = this.blobPath(entry.layer.digest);
      const have = await stat(dest).catch(() => null);
      if (!have || have.size !== entry.layer.size) {
        const tmp = `${dest}.tmp-${randomBytes(6).toString('hex')}`;
        await copyFile(blobPath, tmp);
        await rename(tmp, dest);
        // Copied from the layer whose digest was computed as it was written: no need to hash it again.
        await this.mark(entry.layer.digest, dest);
      }
      this.verified.add(dest);
    }
    await atomicWrite(this.entryPath(entry.key), JSON.stringify(entry));
    if (this.opts.maxSizeBytes !== undefined) await this.prune(this.opts.maxSizeBytes);
  }

  async previousParts(slot: string): Promise<KeyParts | null> {
    try {
      return JSON.parse(await readFile(join(this.dir, 'slots', `${slot}.json`), 'utf8')) as KeyParts;
    } catch {
      return null;
    }
  }

  async rememberParts(slot: string, parts: KeyParts): Promise<void> {
    await mkdir(join(this.dir, 'slots'), { recursive: true });
    await atomicWrite(join(this.dir, 'slots', `${slot}.json`), JSON.stringify(parts));
  }

  /** Drops least-recently-used blobs (and the entries that point at them) until under `max` bytes. */
  async prune(max: number): Promise<void> {
    const dir = join(this.dir, 'blobs');
    const names = await readdir(dir).catch(() => [] as string[]);
    const blobs = (
      await Promise.all(
        names
          .filter((n) => !n.includes('.tmp-'))
          .map(async (n) => ({ n, st: await stat(join(dir, n)).catch(() => null) })),
      )
    ).filter((b) => b.st !== null) as Array<{ n: string; st: Awaited<ReturnType<typeof stat>> }>;
    let total = blobs.reduce((s, b) => s + Number(b.st.size), 0);
    if (total <= max) return;
    blobs.sort((a, b) => Number(a.st.mtimeMs) - Number(b.st.mtimeMs));
    for (const b of blobs) {
      if (total <= max) break;
      await rm(join(dir, b.n), { force: true });
      await rm(join(this.dir, 'verified', b.n), { force: true });
      total -= Number(b.st.size);
    }
  }
}
