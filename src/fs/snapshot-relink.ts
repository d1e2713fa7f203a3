/**
 * Hardlink groups across overlay copy-up. Overlayfs copies up one name of a lower hardlink group at
 * a time (chown, chmod, touch or `ln` of one member), so the upper dir holds a new inode for that
 * name while the other names stay in the lower dir: the layer would then redefine one name as a
 * separate file and split the group in the image. `index=on` would keep the merged view right during
 * the step (not with userxattr, and slower: see mountOverlay), but even then only the touched names are
 * in the upper dir, and a tar layer's hardlink can only point into the same layer. So after the step every
 * lower name of a touched group that the step did not delete or replace is linked to the group's new
 * upper inode, and the layer carries the whole group as one file plus hardlinks, as Kaniko's full
 * snapshot would. The rootfs is only walked when some copied-up file had more than one link.
 */
import { linkSync, lstatSync, readdirSync, unlinkSync, utimesSync, type BigIntStats } from 'node:fs';
import { dirname, join } from 'node:path';
import { sameContent } from './same-entry.ts';
import { chmod, lchown, mkdir, utimes } from 'node:fs/promises';

interface UpperFile {
  path: string;
  st: BigIntStats;
}

const key = (st: BigIntStats): string => `${st.dev}:${st.ino}`;

function lstatOrNull(p: string): BigIntStats | null {
  try {
    return lstatSync(p, { bigint: true, throwIfNoEntry: false }) ?? null;
  } catch {
    return null; // ENOTDIR: a parent is not a directory
  }
}

/**
 * Regular files of the upper dir, by image path. With `rootfs`, only below directories the rootfs
 * also has: elsewhere no file can be a copy of a lower one, and a 20,000-file step in a new
 * directory then costs no stat per file (each a BigIntStats of 18 bigints and 4 Dates, kept for
 * the whole pass: issue 16, peak RSS).
 */
function upperFiles(dir: string, imagePath: string, out: string[], rootfs?: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = `${imagePath}/${e.name}`;
    if (e.isDirectory()) {
      if (rootfs === undefined || lstatOrNull(join(rootfs, path))?.isDirectory())
        upperFiles(join(dir, e.name), path, out, rootfs);
    } else if (e.isFile()) out.push(path);
  }
}

const withStat = (upper: string, path: string): UpperFile => ({
  path,
  st: lstatSync(join(upper, path), { bigint: true }),
});

/** Every rootfs name of the given lower inodes; stops as soon as each group is complete. */
function lowerNames(rootfs: string, want: Map<string, bigint>): Map<string, string[]> {
  const found = new Map<string, string[]>();
  let missing = [...want.values()].reduce((a, b) => a + b, 0n);
  const walk = (dir: string, imagePath: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (missing === 0n) return;
      const host = join(dir, e.name);
      const path = `${imagePath}/${e.name}`;
      if (e.isDirectory()) walk(host, path);
      else if (e.isFile()) {
        const st = lstatSync(host, { bigint: true });
        if (st.nlink < 2n || !want.has(key(st))) continue;
        const names = found.get(key(st)) ?? [];
        names.push(path);
        found.set(key(st), names);
        missing--;
      }
    }
  };
  walk(rootfs, '');
  return found;
}

/** Whether the upper dir hides `path` of the lower dir (a whiteout, a non-directory or an opaque dir above it). */
function hiddenByUpper(upper: string, path: string, isOpaque: (host: string) => boolean): boolean {
  const parts = path.split('/').filter(Boolean);
  let cur = upper;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = join(cur, parts[i]!);
    const st = lstatOrNull(cur);
    if (!st) return false;
    if (!st.isDirectory() || isOpaque(cur)) return true;
  }
  return false;
}

/** Creates the upper dir's missing parents of `path` with the lower dirs' metadata (they merge unchanged). */
async function upperParents(upper: string, rootfs: string, path: string, times: DirTimes): Promise<void> {
  const parts = path.split('/').filter(Boolean);
  let rel = '';
  for (let i = 0; i < parts.length - 1; i++) {
    rel += `/${parts[i]}`;
    if (lstatOrNull(join(upper, rel))) continue;
    const lower = lstatSync(join(rootfs, rel), { bigint: true });
    const dir = join(upper, rel);
    times.keep(dirname(dir));
    await mkdir(dir);
    await lchown(dir, Number(lower.uid), Number(lower.gid));
    await chmod(dir, Number(lower.mode & 0o7777n));
    await utimes(dir, Number(lower.atimeNs) / 1e9, Number(lower.mtimeNs) / 1e9);
  }
}

/**
 * Whether an upper file is a copy-up of its lower name rather than a file the step put there (rm and
 * re-create, or a write through that name). Overlay records no origin on a copied-up hardlink unless
 * index=on, so an unchanged mtime or equal content stands for a copy-up: chown, chmod, touch and ln
 * only change metadata.
 */
function isCopyUp(
  upperHost: string,
  upper: BigIntStats,
  lowerHost: string,
  lower: BigIntStats,
  hasOrigin: boolean,
) {
  if (hasOrigin) return true;
  if (upper.size !== lower.size) return false;
  // Copy-up keeps the mtime; a re-created file gets a new one.
  if (upper.mtimeNs === lower.mtimeNs) return true;
  return sameContent(upperHost, lowerHost);
}

/**
 * Times of the upper dirs relinking writes into, taken before the first write and put back after
 * the last: a link or unlink moves a directory's mtime, and the step did not make that change (the
 * rule of same-entry.ts would then see an unchanged directory as changed, or the step's own mtime
 * would be lost).
 */
class DirTimes {
  private readonly saved = new Map<string, BigIntStats>();
  keep(dir: string): void {
    if (!this.saved.has(dir)) this.saved.set(dir, lstatSync(dir, { bigint: true }));
  }
  restore(): void {
    for (const [dir, st] of this.saved) utimesSync(dir, Number(st.atimeNs) / 1e9, Number(st.mtimeNs) / 1e9);
  }
}

export interface RelinkResult {
  /** Touched groups (lower inodes with more than one name, some name copied up). */
  groups: number;
  /** Names linked or re-linked in the upper dir. */
  linked: number;
}

/**
 * Makes every touched lower hardlink group one inode again in the upper dir. `isOpaque` tells
 * whether an upper directory (host path) is overlay-opaque.
 */
export async function relinkCopiedUpGroups(
  upper: string,
  rootfs: string,
  isOpaque: (host: string) => boolean,
  hasOrigin: (host: string) => boolean,
): Promise<RelinkResult> {
  const maybe: string[] = [];
  upperFiles(upper, '', maybe, rootfs);
  // Lower group (dev:ino of the rootfs inode) → its copied-up names.
  const touched = new Map<string, UpperFile[]>();
  const want = new Map<string, bigint>();
  for (const path of maybe) {
    const lower = lstatOrNull(join(rootfs, path));
    if (!lower || !lower.isFile() || lower.nlink < 2n) continue;
    const f = withStat(upper, path);
    const host = join(upper, f.path);
    if (!isCopyUp(host, f.st, join(rootfs, f.path), lower, hasOrigin(host))) continue;
    const k = key(lower);
    const group = touched.get(k);
    if (group) group.push(f);
    else touched.set(k, [f]);
    want.set(k, lower.nlink);
  }
  if (touched.size === 0) return { groups: 0, linked: 0 };
  // A name the step linked to a copy may be anywhere, new directories too.
  const all: string[] = [];
  upperFiles(upper, '', all);
  const byUpperInode = new Map<string, UpperFile[]>();
  for (const f of all.map((p) => withStat(upper, p))) {
    const same = byUpperInode.get(key(f.st));
    if (same) same.push(f);
    else byUpperInode.set(key(f.st), [f]);
  }
  const names = lowerNames(rootfs, want);
  const times = new DirTimes();
  let linked = 0;
  for (const [k, copied] of touched) {
    // Several names copied up separately (chown -R): the one changed last wins; they only differ
    // when the step wrote through one name, and then that one is the newest.
    const winner = copied.reduce((a, b) => (b.st.ctimeNs > a.st.ctimeNs ? b : a));
    const target = join(upper, winner.path);
    const winnerKey = key(winner.st);
    const copiedKeys = new Set(copied.map((c) => key(c.st)));
    for (const path of names.get(k) ?? []) {
      const host = join(upper, path);
      const cur = lstatOrNull(host);
      if (cur && key(cur) === winnerKey) continue;
      // Deleted (whiteout), or replaced by the step with something that is not a copy of the group.
      if (cur && (!cur.isFile() || !copiedKeys.has(key(cur)))) continue;
      if (!cur && hiddenByUpper(upper, path, isOpaque)) continue;
      if (cur) {
        times.keep(dirname(host));
        unlinkSync(host);
      } else await upperParents(upper, rootfs, path, times);
      times.keep(dirname(host));
      linkSync(target, host);
      linked++;
    }
    // Names the step linked to a losing copy (`ln` after `chown -R`) follow the winner too.
    for (const loser of copiedKeys) {
      if (loser === winnerKey) continue;
      for (const f of byUpperInode.get(loser) ?? []) {
        const host = join(upper, f.path);
        if (key(lstatSync(host, { bigint: true })) === winnerKey) continue;
        times.keep(dirname(host));
        unlinkSync(host);
        linkSync(target, host);
        linked++;
      }
    }
  }
  times.restore();
  return { groups: touched.size, linked };
}
