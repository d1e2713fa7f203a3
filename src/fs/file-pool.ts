/**
 * Files a COPY made, kept by hard link so that the next build's COPY of the same unchanged source to
 * the same place links the kept inode instead of creating a new file.
 *
 * Why: on this class of disk creating an inode is the cost of a COPY (5,000 small files: 0.35-1.2 s,
 * each O_CREAT 0.45-0.6 ms of system time, most of it ext4 looking for a free inode), while link()
 * allocates none. A one-file rebuild's COPY of 5,000 files then creates one file and links 4,999.
 *
 * Safety, as for the tree store this pool lives in: only the overlay snapshot engine uses it, where
 * nothing writes a stage tree's file in place (RUN writes arrive as new inodes, COPY and extraction
 * unlink before they create). A pooled inode is found by a key that holds everything its bytes and
 * attributes came from: the source's identity (device, inode, size, mtime and ctime, the same trust
 * the layer cache's stat index gives a context file), the image path it was written to (so two paths
 * of one tree never share an inode and look like a hard-link pair) and the mode, owner and mtime the
 * COPY gave it. A linked file is checked against those attributes once more and replaced when it
 * differs. Files whose source has xattrs are never linked (setting them would change every tree
 * sharing the inode).
 */
import { createHash } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, unlinkSync, type Stats } from 'node:fs';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** What a COPY gives a regular file, besides its bytes. */
export interface PooledMeta {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

export class FilePool {
  private usable = true;
  private made = false;
  /** Files linked from the pool and files added to it in this process, for the debug line. */
  linked = 0;
  added = 0;

  constructor(readonly dir: string) {}

  /** The pool name of `src`'s bytes written to `imagePath` with `meta`. */
  key(src: Stats, imagePath: string, meta: PooledMeta): string {
    return createHash('sha256')
      .update(
        `${src.dev}:${src.ino}:${src.size}:${src.mtimeMs}:${src.ctimeMs}\0${imagePath}\0` +
          `${meta.mode}:${meta.uid}:${meta.gid}:${meta.mtime.getTime()}`,
      )
      .digest('hex');
  }

  /**
   * Links the pooled file `key` at `dest` (which must not exist) when it is there and still has the
   * wanted size and attributes; false when the caller must create the file.
   */
  take(key: string, dest: string, size: number, meta: PooledMeta): boolean {
    if (!this.usable) return false;
    try {
      linkSync(join(this.dir, key), dest);
    } catch (e) {
      this.offOn(e);
      return false;
    }
    const st = lstatSync(dest);
    if (
      st.isFile() &&
      st.size === size &&
      (st.mode & 0o7777) === meta.mode &&
      st.uid === meta.uid &&
      st.gid === meta.gid &&
      Math.abs(st.mtimeMs - meta.mtime.getTime()) < 1
    ) {
      this.linked++;
      return true;
    }
    // Not what the key promised (changed by something outside kiln): never used again.
    unlinkSync(dest);
    try {
      unlinkSync(join(this.dir, key));
    } catch {
      // another build removed it first
    }
    return false;
  }

  /** Whether `key` is pooled (and the pool in use). */
  has(key: string): boolean {
    return this.usable && lstatSync(join(this.dir, key), { throwIfNoEntry: false }) !== undefined;
  }

  /** The pool's directory, made when missing; undefined when the pool is off. */
  ready(): string | undefined {
    if (!this.usable) return undefined;
    try {
      if (!this.made) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.made = true;
      return this.dir;
    } catch (e) {
      this.offOn(e);
      return undefined;
    }
  }

  /** Adds the file a COPY just made at `path` under `key`. */
  give(key: string, path: string): void {
    const dir = this.ready();
    if (!dir) return;
    try {
      linkSync(path, join(dir, key));
      this.added++;
    } catch (e) {
      // EEXIST: the same file from the same source, kept by another build.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') this.offOn(e);
    }
  }

  /** Takes `key` out of the pool (its file is about to change). */
  drop(key: string): void {
    try {
      unlinkSync(join(this.dir, key));
    } catch {
      // not there
    }
  }

  /** ENOENT is a miss; anything else (EXDEV, EPERM, EMLINK, ENOSPC) turns the pool off for this build. */
  private offOn(e: unknown): void {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.usable = false;
  }

  /**
   * Removes pooled files no tree uses any more (one link left: the pool's) once unused for
   * `unusedMs` (their ctime is when the last other link went), oldest first beyond `maxBytes`.
   */
  async prune(unusedMs: number, maxBytes: number): Promise<{ removed: number; bytes: number }> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const free: Array<{ p: string; size: number; ctime: number }> = [];
    let removed = 0;
    const now = Date.now();
    for (const n of names) {
      const p = join(this.dir, n);
      // Sync: an awaited lstat per file costs ~10x as much for thousands of small entries.
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (!st || st.nlink > 1) continue;
      if (now - st.ctimeMs > unusedMs) {
        await unlink(p).catch(() => undefined);
        removed++;
      } else free.push({ p, size: st.size, ctime: st.ctimeMs });
    }
    let total = free.reduce((s, f) => s + f.size, 0);
    free.sort((a, b) => a.ctime - b.ctime);
    for (const f of free) {
      if (total <= maxBytes) break;
      await unlink(f.p).catch(() => undefined);
      total -= f.size;
      removed++;
    }
    return { removed, bytes: total };
  }
}
