/**
 * Extracted trees kept between builds (containerd's snapshotter, buildah's containers-storage): the
 * tree that a list of layers gives, stored once under its OCI chain id in `<cache-dir>/trees/`, and
 * handed to a stage as a hard-link clone instead of extracting the layers again.
 *
 * Why hard-link clones are safe: the store is only used with the overlay snapshot engine, where
 * nothing writes a stage tree's files in place (RUN writes go to the step's upper dir and arrive as
 * new inodes; COPY and extraction unlink before they create). Directories are never shared.
 *
 * Crash safety: an entry is built in a `.tmp-*` directory and renamed to its chain id only once
 * complete, so a name that exists is a whole tree. Entries older than the cap allows go least
 * recently used first (a hit touches the entry's meta file).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeTree } from '../fs/remove-tree.ts';
import { runCommand } from '../util/command.ts';
import { FilePool } from '../fs/file-pool.ts';
import { spreadSubdirs } from '../fs/spread-dirs.ts';

/** OCI image spec: ChainID(L0) = DiffID(L0); ChainID(L0..n) = SHA256(ChainID(L0..n-1) + " " + DiffID(Ln)). */
/** The store's folder inside `--cache-dir`; CI caches that keep only blobs leave it out. */
export const TREE_STORE_DIR = 'trees';

export function chainId(diffIds: readonly string[]): string | undefined {
  let chain: string | undefined;
  for (const d of diffIds) {
    chain = chain === undefined ? d : `sha256:${createHash('sha256').update(`${chain} ${d}`).digest('hex')}`;
  }
  return chain;
}

export interface TreeStoreOptions {
  /** `<cache-dir>/trees`. */
  dir: string;
  /**
   * What else decides a tree's bytes besides its layers: the extracting uid (rootless trees hold
   * other owners), whether device nodes were made. Entries of other identities are never shared.
   */
  identity: string;
  /** Least recently used entries go once the store is larger (file sizes; shared inodes counted per entry). */
  maxBytes: number;
  /** One line per decision, at debug level. */
  debug(msg: string): void;
}

interface EntryMeta {
  version: 1;
  chain: string;
  platform?: string;
  bytes: number;
  files: number;
}

/** Stale `.tmp-*` builds (a build killed mid-copy) are removed once older than this. */
const STALE_TMP_MS = 60 * 60 * 1000;

/** The COPY file pool's folder in the store (src/fs/file-pool.ts); never an entry. */
const POOL_DIR = 'files';
/** Its mtime says when the pool was last pruned. */
const POOL_MARK = 'files.pruned';
/** Pooled files no tree holds go after a week unused, or oldest first beyond this share of the cap. */
const POOL_UNUSED_MS = 7 * 24 * 60 * 60 * 1000;
const POOL_SHARE = 4;

export class TreeStore {
  private readonly root: string;
  /** False after a clone failed with EXDEV (store and work dir on different filesystems). */
  private usable = true;

  private pool: FilePool | undefined;
  private spread = false;

  constructor(private readonly opts: TreeStoreOptions) {
    this.root = join(opts.dir, opts.identity);
  }

  /** The pool of files COPYs made, for trees of this identity; undefined once the store is off. */
  get files(): FilePool | undefined {
    if (!this.usable) return undefined;
    if (!this.pool) this.spreadOnce();
    return (this.pool ??= new FilePool(join(this.root, POOL_DIR)));
  }

  /**
   * Each entry and the pool in block groups of their own (spread-dirs.ts), before this build makes
   * any of them: a cold runner's store starts empty, and its kept trees and pooled files would
   * otherwise go where the last runner's were just deleted.
   */
  private spreadOnce(): void {
    if (this.spread) return;
    this.spread = true;
    mkdirSync(this.root, { recursive: true });
    spreadSubdirs([this.root]);
  }

  /** An entry's directory: its chain id, and the platform its tree was made for when given. */
  private entryDir(chain: string, platform: string | undefined): string {
    const hex = chain.replace(/^sha256:/, '');
    return join(this.root, platform ? `${hex}-${platform.replace(/\//g, '-')}` : hex);
  }

  /** Puts the kept tree of `diffIds` into the empty dir `dest` as hard links; false when there is none. */
  async restore(diffIds: readonly string[], dest: string, platform?: string): Promise<boolean> {
    const chain = chainId(diffIds);
    if (!chain || !this.usable) return false;
    const dir = this.entryDir(chain, platform);
    const meta = join(dir, 'meta.json');
    if (!(await stat(meta).catch(() => null))) return false;
    const t = Date.now();
    await mkdir(dest, { recursive: true });
    const r = await runCommand('cp', ['-a', '--link', `${join(dir, 'rootfs')}/.`, `${dest}/`], {
      stdout: 'ignore',
    });
    if (r.code !== 0) {
      this.disableOn(r.stderr);
      // A partial clone is not a tree: empty dest again so the caller extracts from scratch.
      await removeTree(dest);
      await mkdir(dest, { recursive: true });
      return false;
    }
    const now = new Date();
    await utimes(meta, now, now).catch(() => undefined);
    this.opts.debug(
      `tree store: ${diffIds.length} layers (${chain.slice(7, 19)}) cloned in ${Date.now() - t} ms`,
    );
    return true;
  }

  /** Keeps a copy (hard links) of `src`, the tree `diffIds` give; a no-op when it is kept already. */
  async keep(diffIds: readonly string[], src: string, platform?: string): Promise<void> {
    const chain = chainId(diffIds);
    if (!chain || !this.usable) return;
    const dir = this.entryDir(chain, platform);
    if (await stat(join(dir, 'meta.json')).catch(() => null)) return;
    const t = Date.now();
    await mkdir(this.root, { recursive: true });
    this.spreadOnce();
    const tmp = join(this.root, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(join(tmp, 'rootfs'), { recursive: true });
    const r = await runCommand('cp', ['-a', '--link', `${src}/.`, `${join(tmp, 'rootfs')}/`], {
      stdout: 'ignore',
    });
    if (r.code !== 0) {
      this.disableOn(r.stderr);
      await removeTree(tmp);
      return;
    }
    const size = await treeSize(join(tmp, 'rootfs'));
    const meta: EntryMeta = { version: 1, chain, ...(platform ? { platform } : {}), ...size };
    await writeFile(join(tmp, 'meta.json'), JSON.stringify(meta));
    try {
      await rename(tmp, dir);
    } catch {
      // Another build kept the same tree first: theirs is as good.
      await removeTree(tmp);
      return;
    }
    this.opts.debug(
      `tree store: kept ${diffIds.length} layers (${chain.slice(7, 19)}, ${size.files} files) in ${Date.now() - t} ms`,
    );
    await this.evict();
  }

  private disableOn(stderr: string): void {
    if (/cross-device|Invalid cross-device link/i.test(stderr)) {
      this.usable = false;
      this.opts.debug('tree store: off (the cache dir and the work dir are on different filesystems)');
    } else this.opts.debug(`tree store: cp failed: ${stderr.trim().split('\n')[0] ?? ''}`);
  }

  /** Drops least-recently-used entries until the store is within its cap; removes stale temp dirs. */
  async evict(): Promise<void> {
    const names = await readdir(this.root).catch(() => [] as string[]);
    const entries: Array<{ dir: string; bytes: number; used: number }> = [];
    for (const n of names) {
      const dir = join(this.root, n);
      if (n === POOL_DIR || n === POOL_MARK) continue;
      if (n.startsWith('.tmp-')) {
        const st = await stat(dir).catch(() => null);
        if (st && Date.now() - st.mtimeMs > STALE_TMP_MS) await removeTree(dir);
        continue;
      }
      const metaPath = join(dir, 'meta.json');
      const st = await stat(metaPath).catch(() => null);
      if (!st) {
        // Not kiln's doing (an entry is renamed in whole): a tree without its meta is not trusted.
        const d = await stat(dir).catch(() => null);
        if (d && Date.now() - d.mtimeMs > STALE_TMP_MS) await removeTree(dir);
        continue;
      }
      const meta = JSON.parse(await readFile(metaPath, 'utf8').catch(() => '{}')) as Partial<EntryMeta>;
      entries.push({ dir, bytes: meta.bytes ?? 0, used: st.mtimeMs });
    }
    let total = entries.reduce((s, e) => s + e.bytes, 0);
    entries.sort((a, b) => a.used - b.used);
    for (const e of entries) {
      if (total <= this.opts.maxBytes) break;
      // Renamed away first, so no reader ever sees half an entry.
      const gone = join(this.root, `.tmp-evict-${randomBytes(4).toString('hex')}`);
      await rename(e.dir, gone).catch(() => undefined);
      await removeTree(gone);
      total -= e.bytes;
      this.opts.debug(`tree store: evicted ${e.dir} (${e.bytes} bytes)`);
    }
    await this.prunePool();
  }

  /** At most once an hour: pooled files no kept tree or build holds, unused for a week or over a share of the cap. */
  private async prunePool(): Promise<void> {
    const mark = join(this.root, POOL_MARK);
    const last = await stat(mark).catch(() => null);
    if (last && Date.now() - last.mtimeMs < STALE_TMP_MS) return;
    if (!(await stat(join(this.root, POOL_DIR)).catch(() => null))) return;
    await writeFile(mark, '');
    const pool = new FilePool(join(this.root, POOL_DIR));
    const r = await pool.prune(POOL_UNUSED_MS, this.opts.maxBytes / POOL_SHARE);
    if (r.removed > 0) this.opts.debug(`tree store: ${r.removed} unused pooled files removed`);
  }
}

/**
 * find, not a walk in node: an awaited stat per entry took 582 ms for debian's 6,766 entries, find
 * about 70 ms. Every link counts, as eviction counts an entry's shared inodes.
 */
async function treeSize(dir: string): Promise<{ bytes: number; files: number }> {
  const r = await runCommand('find', [dir, '-mindepth', '1', '-printf', '%y %s\\n']);
  let bytes = 0;
  let files = 0;
  for (const line of r.stdout.split('\n')) {
    if (line === '') continue;
    files++;
    if (line.startsWith('f ')) bytes += Number(line.slice(2));
  }
  return { bytes, files };
}
