/**
 * The walk snapshot engine, for sandboxes where mounting is not allowed: steps run in the rootfs
 * itself; `begin` indexes every entry's metadata (inode, mode, owner, size, mtime, ctime, link
 * target) and the tree's xattrs, and `finish` walks again and compares by the rule of same-entry.ts,
 * the overlay engine's rule too. The old bytes are gone by then, so where that rule reads content
 * (equal metadata, whole-second mtimes: every file a tar layer or dpkg made) `begin` keeps a SHA-256
 * of each such file, reused from the previous step while the file's inode, birth time and ctime are
 * unchanged (any write moves the ctime), so a stage hashes its base once. A directory whose
 * inode changed was replaced and becomes opaque, with everything below it in the diff; a changed
 * file brings the other names of its inode; a deletion is reported at its top-most path only.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../util/errors.ts';
import type { Diff, Snapshotter, StepSnapshot } from './types.ts';
import { isExcluded } from './exclude.ts';
import { compareMeta, isFileMode, sameXattrs } from './same-entry.ts';
import { keepXattr, readXattrs, readXattrsUnder } from './xattr.ts';

export interface WalkOptions {
  /** Parallel file system calls (default 64). */
  concurrency?: number;
}

interface Entry {
  ino: bigint;
  dev: bigint;
  mode: bigint;
  uid: bigint;
  gid: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Birth time (statx), 0 where the filesystem has none: tells a new file on a reused inode number. */
  btimeNs: bigint;
  rdev: bigint;
  nlink: bigint;
  target?: string;
  /** Regular files with whole-second mtimes and some bytes: a SHA-256 of the content. */
  hash?: string;
}

type Index = Map<string, Entry>;

/** Hashes kept from step to step, with what makes them still valid. */
type HashCache = Map<string, { key: string; hash: string }>;

const NS = 1_000_000_000n;

function needsHash(e: Entry): boolean {
  return isFileMode(e.mode) && e.size > 0n && e.mtimeNs % NS === 0n;
}

const hashKey = (e: Entry): string => `${e.dev}:${e.ino}:${e.btimeNs}:${e.ctimeNs}:${e.size}:${e.mtimeNs}`;

function hashFile(host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const h = createHash('sha256');
    createReadStream(host)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      // Unreadable: no hash, so the rule calls it changed.
      .on('error', () => resolve(undefined));
  });
}

/** Fills `hash` of the entries that need one, from the cache where still valid. */
async function hashEntries(root: string, index: Index, cache: HashCache, concurrency: number): Promise<void> {
  const limit = new Limiter(Math.min(concurrency, 8));
  const base = root.replace(/\/+$/, '');
  await Promise.all(
    [...index].map(async ([p, e]) => {
      if (!needsHash(e)) return;
      const key = hashKey(e);
      const hit = cache.get(p);
      if (hit?.key === key) {
        e.hash = hit.hash;
        return;
      }
      e.hash = await limit.run(() => hashFile(base + p));
      if (e.hash) cache.set(p, { key, hash: e.hash });
    }),
  );
}

/** Image path → kept xattrs, of the entries that have some; `undefined`: getfattr is not installed. */
type XattrIndex = Map<string, Map<string, Buffer>> | undefined;

/** Never walked, whatever the step's excludes say. */
const NEVER = ['/proc', '/sys', '/dev'];

const noop = (): void => undefined;

class Limiter {
  private active = 0;
  private waiting: Array<() => void> = [];
  private head = 0;
  constructor(private readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      // A moving head instead of shift(): the queue can hold every entry of a big tree.
      const next = this.waiting[this.head];
      if (next) {
        this.waiting[this.head++] = noop;
        if (this.head > 1024 && this.head * 2 > this.waiting.length) {
          this.waiting = this.waiting.slice(this.head);
          this.head = 0;
        }
        next();
      }
    }
  }
}

function isDir(e: Entry): boolean {
  return (e.mode & 0o170000n) === 0o040000n;
}

async function scan(rootfs: string, exclude: string[], concurrency: number): Promise<Index> {
  const index: Index = new Map();
  const limit = new Limiter(concurrency);
  const rootDev = (await lstat(rootfs, { bigint: true })).dev;

  const visit = async (host: string, path: string): Promise<void> => {
    const st: BigIntStats | null = await limit.run(() => lstat(host, { bigint: true }).catch(() => null));
    if (!st) return; // vanished while walking
    // Something mounted inside the rootfs is not the step's change.
    if (st.dev !== rootDev) return;
    const e: Entry = {
      ino: st.ino,
      dev: st.dev,
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      mtimeNs: st.mtimeNs,
      ctimeNs: st.ctimeNs,
      btimeNs: st.birthtimeNs,
      rdev: st.rdev,
      nlink: st.nlink,
    };
    if (st.isSymbolicLink()) e.target = await limit.run(() => readlink(host).catch(() => ''));
    index.set(path, e);
    if (st.isDirectory()) await walkDir(host, path);
  };

  const walkDir = async (host: string, path: string): Promise<void> => {
    const names = await limit.run(async () => {
      const out: string[] = [];
      try {
        const d = await opendir(host);
        for await (const ent of d) out.push(ent.name);
      } catch {
        // unreadable or vanished
      }
      return out;
    });
    await Promise.all(
      names.map((name) => {
        const child = path === '/' ? `/${name}` : `${path}/${name}`;
        if (isExcluded(child, exclude)) return undefined;
        return visit(host === '/' ? `/${name}` : `${host}/${name}`, child);
      }),
    );
  };

  await walkDir(rootfs.replace(/\/+$/, '') || '/', '/');
  return index;
}

/**
 * The tree's xattrs before a step (one getfattr run), by image path, minus the host-only ones;
 * `undefined` when getfattr is missing (then layers carry no xattrs either, and none are compared).
 */
async function scanXattrs(rootfs: string, exclude: string[]): Promise<XattrIndex> {
  const root = rootfs.replace(/\/+$/, '');
  let raw: Map<string, Map<string, Buffer>>;
  try {
    raw = await readXattrsUnder(root, '-', 'install the attr package');
  } catch (e) {
    if (e instanceof KilnError && e.code === 'GETFATTR_MISSING') return undefined;
    throw e;
  }
  const out = new Map<string, Map<string, Buffer>>();
  for (const [host, m] of raw) {
    if (!host.startsWith(root + '/')) continue;
    const path = host.slice(root.length);
    if (isExcluded(path, exclude)) continue;
    for (const name of [...m.keys()]) if (!keepXattr(name)) m.delete(name);
    if (m.size > 0) out.set(path, m);
  }
  return out;
}

/**
 * Whether an entry present before and after the step is unchanged by the metadata part of the rule.
 * `suspect`: equal, but its inode or ctime moved, so an xattr may have changed (setcap); `content`:
 * equal, whole-second mtimes, and touched: the bytes decide.
 */
function judge(old: Entry, now: Entry): 'same' | 'suspect' | 'content' | 'changed' {
  if (old.target !== now.target) return 'changed';
  const v = compareMeta(old, now);
  if (v === 'changed') return v;
  // ext4 hands a file made in the step the number of one it deleted: the birth time tells them apart.
  const sameFile = old.ino === now.ino && old.dev === now.dev && old.btimeNs === now.btimeNs;
  const moved = !sameFile || old.ctimeNs !== now.ctimeNs;
  // Untouched since `begin`: the bytes are the ones hashed then. Touched: they decide (useradd
  // rewrites /etc/group- in place with the same size and its whole-second mtime put back).
  if (v === 'content') return moved ? 'content' : 'same';
  return moved ? 'suspect' : 'same';
}

function under(p: string, dirs: Set<string>): boolean {
  for (let d = posix.dirname(p); d !== '/'; d = posix.dirname(d)) if (dirs.has(d)) return true;
  return false;
}

/** Other names of the changed files' inodes (a tar hardlink can only point into its own layer). */
function addLinkedNames(after: Index, changed: Set<string>): void {
  const byInode = new Map<string, string[]>();
  for (const [p, e] of after) {
    if (e.nlink < 2n || !isFileMode(e.mode)) continue;
    const k = `${e.dev}:${e.ino}`;
    const names = byInode.get(k);
    if (names) names.push(p);
    else byInode.set(k, [p]);
  }
  for (const names of byInode.values()) {
    if (names.length > 1 && names.some((n) => changed.has(n))) for (const n of names) changed.add(n);
  }
}

/** The Diff between two indexes of the same tree. `readNow` gives current xattrs of image paths. */
export async function diffIndexes(
  before: Index,
  after: Index,
  root: string,
  xattrs?: { before: XattrIndex; readNow: (paths: string[]) => Promise<Map<string, Map<string, Buffer>>> },
  hashNow: (path: string) => Promise<string | undefined> = () => Promise.resolve(undefined),
): Promise<Diff> {
  const changed = new Set<string>();
  const opaque: string[] = [];
  const replacedDirs = new Set<string>();
  const suspects: string[] = [];
  const contents: Array<[string, string | undefined]> = [];
  for (const [p, now] of after) {
    const old = before.get(p);
    // A new directory, even on the number of the one the step removed (ext4 reuses it at once).
    if (old && isDir(old) && isDir(now) && (old.ino !== now.ino || old.btimeNs !== now.btimeNs)) {
      changed.add(p);
      opaque.push(p);
      replacedDirs.add(p);
      continue;
    }
    const v = old ? judge(old, now) : 'changed';
    if (v === 'changed') changed.add(p);
    else if (v === 'suspect') suspects.push(p);
    else if (v === 'content') contents.push([p, old!.hash]);
  }
  for (const [p, was] of contents) {
    const h = was === undefined ? undefined : await hashNow(p);
    if (h === undefined || h !== was) changed.add(p);
    else suspects.push(p);
  }
  if (xattrs?.before && suspects.length > 0) {
    const now = await xattrs.readNow(suspects);
    for (const p of suspects) if (!sameXattrs(xattrs.before.get(p), now.get(p))) changed.add(p);
  }
  // An opaque dir hides the old tree: whatever is below it must be in the layer.
  if (replacedDirs.size > 0) for (const p of after.keys()) if (under(p, replacedDirs)) changed.add(p);
  addLinkedNames(after, changed);
  const deleted: string[] = [];
  for (const p of before.keys()) {
    if (after.has(p)) continue;
    const parent = posix.dirname(p);
    if (parent !== '/') {
      const pNow = after.get(parent);
      // Gone with its parent (reported there), under a dir replaced by a file, or under an opaque dir.
      if (!pNow || !isDir(pNow) || replacedDirs.has(parent)) continue;
      const pOld = before.get(parent);
      if (!pOld || !isDir(pOld)) continue;
    }
    deleted.push(p);
  }
  // Parent dirs of changed and deleted entries are part of the diff (as in the overlay engine, whose
  // upper dir holds them, and BuildKit's differ).
  for (const p of [...changed, ...deleted]) {
    for (let d = posix.dirname(p); d !== '/' && !changed.has(d); d = posix.dirname(d)) changed.add(d);
  }
  return { root, changed: [...changed].sort(), deleted: deleted.sort(), opaque: opaque.sort() };
}

class WalkStep implements StepSnapshot {
  private done = false;
  constructor(
    readonly runRoot: string,
    private readonly before: Index,
    private readonly beforeXattrs: XattrIndex,
    private readonly exclude: string[],
    private readonly concurrency: number,
    private readonly hashes: HashCache,
  ) {}

  private async xattrsNow(paths: string[]): Promise<Map<string, Map<string, Buffer>>> {
    const root = this.runRoot.replace(/\/+$/, '');
    const byHost = await readXattrs(paths.map((p) => root + p));
    const out = new Map<string, Map<string, Buffer>>();
    for (const [host, m] of byHost) out.set(host.slice(root.length), m);
    return out;
  }

  async finish(): Promise<Diff> {
    if (this.done) throw new KilnError('internal', 'SNAPSHOT_REUSED', 'snapshot already finished or aborted');
    this.done = true;
    try {
      const after = await scan(this.runRoot, this.exclude, this.concurrency);
      const root = this.runRoot.replace(/\/+$/, '');
      return await diffIndexes(
        this.before,
        after,
        this.runRoot,
        { before: this.beforeXattrs, readNow: (paths) => this.xattrsNow(paths) },
        async (p) => {
          const h = await hashFile(root + p);
          // Valid for the next step's `begin` while the file stays as it is now.
          if (h) this.hashes.set(p, { key: hashKey(after.get(p)!), hash: h });
          return h;
        },
      );
    } catch (e) {
      throw new KilnError('fs', 'SNAPSHOT_WALK', `cannot walk ${this.runRoot}: ${(e as Error).message}`, {
        hint: 'check that the rootfs is readable by the builder',
        cause: e,
      });
    }
  }

  async abort(): Promise<void> {
    // The step ran in the rootfs itself: nothing to undo here.
    this.done = true;
  }
}

export function createWalkSnapshotter(rootfs: string, opts: WalkOptions = {}): Snapshotter {
  const concurrency = Math.max(1, opts.concurrency ?? 64);
  const hashes: HashCache = new Map();
  return {
    engine: 'walk',
    async begin(o: { exclude: string[] }): Promise<StepSnapshot> {
      const exclude = [...NEVER, ...o.exclude];
      let before: Index;
      let xattrs: XattrIndex;
      try {
        [before, xattrs] = await Promise.all([
          scan(rootfs, exclude, concurrency),
          scanXattrs(rootfs, exclude),
        ]);
        await hashEntries(rootfs, before, hashes, concurrency);
      } catch (e) {
        throw new KilnError('fs', 'SNAPSHOT_WALK', `cannot walk ${rootfs}: ${(e as Error).message}`, {
          hint: 'check that the rootfs exists and is readable by the builder',
          cause: e,
        });
      }
      return new WalkStep(rootfs, before, xattrs, exclude, concurrency, hashes);
    },
  };
}
