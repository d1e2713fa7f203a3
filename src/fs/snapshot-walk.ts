/**
 * The walk snapshot engine, for sandboxes where mounting is not allowed: steps run in the rootfs
 * itself; `begin` indexes every entry's metadata (inode, mode, owner, size, mtime, ctime, link
 * target) and `finish` walks again and compares. Any metadata change, ctime included, marks an entry
 * changed, so content rewrites that keep size and mtime are still caught. A directory whose inode
 * changed was replaced and becomes opaque; a deletion is reported at its top-most path only.
 */
import type { BigIntStats } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../util/errors.ts';
import type { Diff, Snapshotter, StepSnapshot } from './types.ts';
import { isExcluded } from './exclude.ts';

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
  target?: string;
}

type Index = Map<string, Entry>;

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

function same(a: Entry, b: Entry): boolean {
  return (
    a.ino === b.ino &&
    a.dev === b.dev &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs &&
    a.target === b.target
  );
}

/** The Diff between two indexes of the same tree. */
export function diffIndexes(before: Index, after: Index, root: string): Diff {
  const changed = new Set<string>();
  const opaque: string[] = [];
  const replacedDirs = new Set<string>();
  for (const [p, now] of after) {
    const old = before.get(p);
    if (old && same(old, now)) continue;
    changed.add(p);
    if (old && isDir(old) && isDir(now) && old.ino !== now.ino) {
      opaque.push(p);
      replacedDirs.add(p);
    }
  }
  const deleted: string[] = [];
  for (const [p, old] of before) {
    if (after.has(p)) continue;
    void old;
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
  // Parent dirs of changed entries are part of the diff.
  for (const p of [...changed]) {
    for (let d = posix.dirname(p); d !== '/' && !changed.has(d); d = posix.dirname(d)) changed.add(d);
  }
  return { root, changed: [...changed].sort(), deleted: deleted.sort(), opaque: opaque.sort() };
}

class WalkStep implements StepSnapshot {
  private done = false;
  constructor(
    readonly runRoot: string,
    private readonly before: Index,
    private readonly exclude: string[],
    private readonly concurrency: number,
  ) {}

  async finish(): Promise<Diff> {
    if (this.done) throw new KilnError('internal', 'SNAPSHOT_REUSED', 'snapshot already finished or aborted');
    this.done = true;
    try {
      const after = await scan(this.runRoot, this.exclude, this.concurrency);
      return diffIndexes(this.before, after, this.runRoot);
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
  return {
    engine: 'walk',
    async begin(o: { exclude: string[] }): Promise<StepSnapshot> {
      const exclude = [...NEVER, ...o.exclude];
      let before: Index;
      try {
        before = await scan(rootfs, exclude, concurrency);
      } catch (e) {
        throw new KilnError('fs', 'SNAPSHOT_WALK', `cannot walk ${rootfs}: ${(e as Error).message}`, {
          hint: 'check that the rootfs exists and is readable by the builder',
          cause: e,
        });
      }
      return new WalkStep(rootfs, before, exclude, concurrency);
    },
  };
}
