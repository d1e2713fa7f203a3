/**
 * The overlay snapshot engine: each step runs in an overlayfs merged view whose lower dir is the
 * rootfs, so what the step changed is exactly the upper dir. `finish` unmounts, reads the upper dir
 * (whiteout devices are deletions, overlay-opaque dirs are opaque), then folds the upper dir into the
 * rootfs by renaming entries across (a copy only when the scratch dir is on another filesystem), so
 * the rootfs becomes the new state and also serves as the Diff's root. What the upper dir holds is
 * judged by the rule of same-entry.ts, the walk engine's too: a copy-up that equals its lower entry
 * (overlay copies a file up on chown or chmod to the same value, `touch` to the same time, or an
 * open for writing that writes nothing, as useradd's lock file) is no change and stays out of the
 * layer and of the rootfs; an opaque mark on a directory with no lower directory hides nothing and
 * is dropped (overlay marks new directories opaque as an optimisation).
 */
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { chmod, lchown, mkdir, mkdtemp, opendir, readFile, rename, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../util/errors.ts';
import { firstLine, runCommand } from '../util/command.ts';
import type { Diff, Snapshotter, StepSnapshot } from './types.ts';
import { applyXattrs, readXattrs, readXattrsUnder } from './xattr.ts';
import { isExcluded } from './exclude.ts';
import { relinkCopiedUpGroups } from './snapshot-relink.ts';
import { joinChild, joinUnder } from './clean-join.ts';
import { compareMeta, isFileMode, sameContent, sameXattrs, type EntryMeta } from './same-entry.ts';

/** True when this process runs in a user namespace (uid_map is not the identity over the full range). */
export async function inUserNamespace(): Promise<boolean> {
  const map = await readFile('/proc/self/uid_map', 'utf8').catch(() => '');
  const lines = map.trim().split('\n').filter(Boolean);
  if (lines.length !== 1) return lines.length > 0;
  const [inside, outside, count] = lines[0]!.trim().split(/\s+/);
  return !(inside === '0' && outside === '0' && count === '4294967295');
}

/**
 * Mounts an overlay; tries the strict options first (no redirects, no metacopy) then the plain ones.
 * `volatile` (Linux 5.10+) where the kernel has it: a step's upper dir is scratch that is never
 * needed after a crash, and without it every fsync inside the step (dpkg issues one per unpacked
 * file) and every unmount (a syncfs of the whole upper filesystem) waits for the disk.
 */
export async function mountOverlay(
  lower: string,
  upper: string,
  work: string,
  merged: string,
  userns: boolean,
): Promise<void> {
  for (const p of [lower, upper, work, merged]) {
    if (/[,:\\]/.test(p)) {
      throw new KilnError('fs', 'OVERLAY_PATH', `overlay path contains ',' ':' or '\\': ${p}`, {
        hint: 'use a work directory whose path has none of these characters',
      });
    }
  }
  const base = `lowerdir=${lower},upperdir=${upper},workdir=${work}${userns ? ',userxattr' : ''}`;
  let last: Awaited<ReturnType<typeof runCommand>> | undefined;
  // index=off, as Docker's overlay2 mounts: index=on would keep a touched hardlink group one inode
  // in the merged view, but overlay refuses it with userxattr, and measured here it made a
  // `chown -R` of 2,000 hardlink pairs 2-10x slower (copy-up through the index dir, an origin xattr on
  // every copied-up file to strip afterwards); snapshot-relink.ts mends the groups in the upper dir.
  const strict = ',redirect_dir=off,metacopy=off,index=off';
  for (const extra of [`${strict},volatile`, strict, '']) {
    last = await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', base + extra, merged]);
    if (last.code === 0) return;
  }
  throw new KilnError(
    'fs',
    'OVERLAY_MOUNT',
    `cannot mount overlay on ${merged}: ${firstLine(last!.stderr)}`,
    {
      hint: 'set KILN_SNAPSHOT_ENGINE=walk, or give the builder CAP_SYS_ADMIN (or a user namespace) and overlayfs',
    },
  );
}

export async function unmount(target: string): Promise<void> {
  const r = await runCommand('umount', [target]);
  if (r.code === 0) return;
  // Something still holds the mount (a stray process of the step): detach it so the build goes on.
  const lazy = await runCommand('umount', ['-l', target]);
  if (lazy.code !== 0) {
    throw new KilnError('fs', 'OVERLAY_UMOUNT', `cannot unmount ${target}: ${firstLine(r.stderr)}`, {
      hint: 'a process of the step may still be running; stop it and retry',
    });
  }
}

/** Overlay-private xattrs of every entry under `dir`: host path → names (with values). One getfattr run. */
function overlayXattrs(dir: string): Promise<Map<string, Map<string, Buffer>>> {
  return readXattrsUnder(
    dir,
    '^(trusted|user)\\.overlay\\.',
    'install the attr package (apt-get install attr), or set KILN_SNAPSHOT_ENGINE=walk',
  );
}

interface Node {
  /** Image path, "/a/b". */
  path: string;
  upper: string;
  /** Directories only: their owner, mode and times are compared and merged; other kinds need none. */
  st: BigIntStats | undefined;
  kind: 'whiteout' | 'dir' | 'other';
  opaque: boolean;
  excluded: boolean;
  /** Some descendant is excluded (the subtree cannot be moved as a whole). */
  hasExcluded: boolean;
  children: Node[];
}

// Synchronous stats: a step's upper dir can hold thousands of entries, and one thread-pool hop per
// lstat costs more than the call itself.
function lstatOrNullSync(p: string): BigIntStats | null {
  try {
    return lstatSync(p, { bigint: true, throwIfNoEntry: false }) ?? null;
  } catch {
    // ENOTDIR: a lower-layer file that the step turned into a directory.
    return null;
  }
}

/** What is at `p` now (no nanoseconds needed): `null` when nothing is (or a parent is not a dir). */
function kindAt(p: string): 'dir' | 'other' | null {
  const st = lstatSync(p, { throwIfNoEntry: false });
  return st ? (st.isDirectory() ? 'dir' : 'other') : null;
}

/** Leaves share one child list, never written: a 20,000-file step would otherwise make 20,000 arrays. */
const NO_CHILDREN: Node[] = [];

async function readTree(
  upperDir: string,
  imagePath: string,
  exclude: string[],
  opaqueName: string,
  xattrs: Map<string, Map<string, Buffer>>,
): Promise<Node[]> {
  // The entry types readdir reports (d_type) spare an lstat per file: only directories and character
  // devices (whiteouts) are stat'ed. A peak-memory measure as much as a speed one: 20,000 BigIntStats
  // (18 bigints and 4 Dates each) were most of a big step's heap (issue 16).
  const entries = readdirSync(upperDir, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  const nodes: Node[] = [];
  for (const ent of entries) {
    const name = ent.name;
    const upper = joinChild(upperDir, name);
    const path = imagePath === '/' ? `/${name}` : `${imagePath}/${name}`;
    const known =
      ent.isFile() || ent.isSymbolicLink() || ent.isBlockDevice() || ent.isFIFO() || ent.isSocket();
    const st = known ? undefined : lstatSync(upper, { bigint: true });
    const excluded = isExcluded(path, exclude);
    let kind: Node['kind'] = 'other';
    if (st?.isCharacterDevice() && st.rdev === 0n) kind = 'whiteout';
    else if (st?.isDirectory()) kind = 'dir';
    const node: Node = {
      path,
      upper,
      st: kind === 'dir' ? st : undefined,
      kind,
      opaque: kind === 'dir' && xattrs.get(upper)?.get(opaqueName)?.toString() === 'y',
      excluded,
      hasExcluded: false,
      children: NO_CHILDREN,
    };
    if (kind === 'dir' && !excluded) {
      node.children = await readTree(upper, path, exclude, opaqueName, xattrs);
      node.hasExcluded = node.children.some((c) => c.excluded || c.hasExcluded);
    }
    nodes.push(node);
  }
  return nodes;
}

/** A copied-up entry's metadata for the rule; symlinks with their target. */
function metaOf(host: string, st: BigIntStats): EntryMeta {
  const m: EntryMeta = {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    mtimeNs: st.mtimeNs,
    rdev: st.rdev,
  };
  if (st.isSymbolicLink()) m.target = readlinkSync(host);
  return m;
}

interface Candidate {
  node: Node;
  lowerHost: string;
  upperIno?: string;
  nlink: bigint;
}

/**
 * The upper entries that equal their lower entry by the rule (metadata, bytes where needed, then
 * xattrs in one batch each side), minus members of hardlink groups with a changed member: a group is
 * in the layer whole or not at all. `hidden`: an opaque dir above hides the lower tree.
 */
async function unchangedEntries(nodes: Node[], rootfs: string): Promise<Set<Node>> {
  const cands: Candidate[] = [];
  const visit = (list: Node[], hidden: boolean): void => {
    for (const n of list) {
      if (n.excluded || n.kind === 'whiteout') continue;
      const lowerHost = joinUnder(rootfs, n.path);
      const lower = hidden ? null : lstatOrNullSync(lowerHost);
      if (n.kind === 'dir') {
        if (
          lower &&
          lower.isDirectory() &&
          !n.opaque &&
          compareMeta(metaOf(lowerHost, lower), metaOf(n.upper, n.st!)) === 'same'
        )
          cands.push({ node: n, lowerHost, nlink: 1n });
        // Below a dir with no lower dir (new, or replacing a file) nothing has a lower entry either:
        // no lstat per new file (a 20,000-file step would make 20,000 failing ones).
        visit(n.children, hidden || n.opaque || lower?.isDirectory() !== true);
        continue;
      }
      if (!lower) continue;
      const up = lstatSync(n.upper, { bigint: true });
      let v = compareMeta(metaOf(lowerHost, lower), metaOf(n.upper, up));
      if (v === 'content') v = sameContent(lowerHost, n.upper) ? 'same' : 'changed';
      if (v !== 'same') continue;
      const upperIno = isFileMode(up.mode) && up.nlink > 1n ? `${up.dev}:${up.ino}` : undefined;
      cands.push({ node: n, lowerHost, upperIno, nlink: up.nlink });
    }
  };
  visit(nodes, false);
  if (cands.length === 0) return new Set();
  const [lowerX, upperX] = await Promise.all([
    readXattrs(cands.map((c) => c.lowerHost)),
    readXattrs(cands.map((c) => c.node.upper)),
  ]);
  const same = cands.filter((c) => sameXattrs(lowerX.get(c.lowerHost), upperX.get(c.node.upper)));
  // An upper inode's names are all in the upper dir: unchanged only when every one of them is.
  const groups = new Map<string, number>();
  for (const c of same) if (c.upperIno) groups.set(c.upperIno, (groups.get(c.upperIno) ?? 0) + 1);
  return new Set(
    same.filter((c) => !c.upperIno || BigInt(groups.get(c.upperIno)!) === c.nlink).map((c) => c.node),
  );
}

/** Fills the diff lists; returns whether anything under (or at) these nodes is part of the diff. */
async function collect(nodes: Node[], rootfs: string, diff: Diff, unchanged: Set<Node>): Promise<boolean> {
  let any = false;
  for (const n of nodes) {
    if (n.excluded) continue;
    if (n.kind === 'whiteout') {
      diff.deleted.push(n.path);
      any = true;
    } else if (n.kind === 'other') {
      if (unchanged.has(n)) continue;
      diff.changed.push(n.path);
      any = true;
    } else {
      const below = await collect(n.children, rootfs, diff, unchanged);
      const lower = lstatOrNullSync(joinUnder(rootfs, n.path));
      // Opaque over nothing, or over a non-directory the dir replaces anyway: no marker.
      if (n.opaque && !lower?.isDirectory()) n.opaque = false;
      const changed = n.opaque || below || !unchanged.has(n);
      if (changed) {
        diff.changed.push(n.path);
        if (n.opaque) diff.opaque.push(n.path);
        any = true;
      }
    }
  }
  return any;
}

async function move(src: string, dst: string): Promise<void> {
  try {
    await rename(src, dst);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
  }
  const r = await runCommand('cp', ['-a', '--reflink=auto', '--no-target-directory', src, dst]);
  if (r.code !== 0) {
    throw new KilnError('fs', 'SNAPSHOT_APPLY', `cannot copy ${src} to ${dst}: ${firstLine(r.stderr)}`, {
      hint: 'check free space and permissions of the work directory',
    });
  }
}

async function emptyDir(dir: string): Promise<void> {
  const d = await opendir(dir);
  const names: string[] = [];
  for await (const e of d) names.push(e.name);
  await Promise.all(names.map((n) => rm(join(dir, n), { recursive: true, force: true })));
}

/** Makes the rootfs the merged state: deletions, opaque dirs, then entries moved across, dirs' metadata last. */
async function apply(
  nodes: Node[],
  rootfs: string,
  mergedDirs: Array<{ node: Node; target: string }>,
  unchanged: Set<Node>,
) {
  for (const n of nodes) {
    // An unchanged copy-up stays out of the rootfs too: the rootfs keeps what the layers say.
    if (n.excluded || (n.kind === 'other' && unchanged.has(n))) continue;
    const target = joinUnder(rootfs, n.path);
    if (n.kind === 'whiteout') {
      await rm(target, { recursive: true, force: true });
      continue;
    }
    const cur = kindAt(target);
    if (n.kind === 'other' || (n.kind === 'dir' && !n.hasExcluded && (cur !== 'dir' || n.opaque))) {
      if (cur) await rm(target, { recursive: true, force: true });
      await move(n.upper, target);
      continue;
    }
    // A dir to merge into the existing one (or to create when it holds excluded entries).
    if (cur === 'other') await rm(target, { force: true });
    if (cur !== 'dir') await mkdir(target);
    else if (n.opaque) await emptyDir(target);
    await apply(n.children, rootfs, mergedDirs, unchanged);
    const st = n.st!;
    const mode = Number(st.mode & 0o7777n);
    await lchown(target, Number(st.uid), Number(st.gid));
    await chmod(target, mode);
    await utimes(target, Number(st.atimeNs) / 1e9, Number(st.mtimeNs) / 1e9);
    mergedDirs.push({ node: n, target });
  }
}

class OverlayStep implements StepSnapshot {
  readonly runRoot: string;
  private mounted = true;
  private done = false;

  constructor(
    private readonly rootfs: string,
    private readonly dir: string,
    private readonly exclude: string[],
    private readonly userns: boolean,
  ) {
    this.runRoot = join(dir, 'merged');
  }

  private get upper(): string {
    return join(this.dir, 'upper');
  }

  private async release(): Promise<void> {
    if (this.mounted) {
      await unmount(this.runRoot);
      this.mounted = false;
    }
  }

  async finish(): Promise<Diff> {
    if (this.done) throw new KilnError('internal', 'SNAPSHOT_REUSED', 'snapshot already finished or aborted');
    this.done = true;
    try {
      await this.release();
      const xattrs = await overlayXattrs(this.upper);
      const opaqueName = this.userns ? 'user.overlay.opaque' : 'trusted.overlay.opaque';
      const originName = this.userns ? 'user.overlay.origin' : 'trusted.overlay.origin';
      await relinkCopiedUpGroups(
        this.upper,
        this.rootfs,
        (host) => xattrs.get(host)?.get(opaqueName)?.toString() === 'y',
        (host) => xattrs.get(host)?.has(originName) ?? false,
      );
      const tree = await readTree(this.upper, '/', this.exclude, opaqueName, xattrs);
      const diff: Diff = { root: this.rootfs, changed: [], deleted: [], opaque: [] };
      const unchanged = await unchangedEntries(tree, this.rootfs);
      await collect(tree, this.rootfs, diff, unchanged);
      diff.changed.sort();
      diff.deleted.sort();
      diff.opaque.sort();

      const mergedDirs: Array<{ node: Node; target: string }> = [];
      await apply(tree, this.rootfs, mergedDirs, unchanged);
      // Xattrs of merged dirs (moved entries carry their own).
      const dirX = await readXattrs(mergedDirs.map((m) => m.node.upper));
      await applyXattrs(
        mergedDirs.flatMap((m) => {
          const x = dirX.get(m.node.upper);
          return x ? [{ path: m.target, xattrs: x }] : [];
        }),
      );
      await this.stripOverlayXattrs(xattrs);
      return diff;
    } catch (e) {
      if (e instanceof KilnError) throw e;
      throw new KilnError(
        'fs',
        'SNAPSHOT_FINISH',
        `cannot read the step's changes: ${(e as Error).message}`,
        {
          hint: 'check free space and permissions of the work directory, or set KILN_SNAPSHOT_ENGINE=walk',
          cause: e,
        },
      );
    } finally {
      await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Moved entries keep overlay's private xattrs (origin, opaque, impure): drop them from the rootfs. */
  private async stripOverlayXattrs(xattrs: Map<string, Map<string, Buffer>>): Promise<void> {
    const args: string[] = [];
    const prefix = this.upper + '/';
    for (const [host, names] of xattrs) {
      if (!host.startsWith(prefix)) continue;
      const path = '/' + host.slice(prefix.length);
      if (isExcluded(path, this.exclude)) continue;
      for (const name of names.keys()) args.push(name, join(this.rootfs, path));
    }
    if (args.length === 0) return;
    // One shell runs all the removals; a missing entry or attribute is fine.
    await runCommand('sh', [
      '-c',
      'while [ $# -gt 1 ]; do setfattr -h -x "$1" "$2" 2>/dev/null; shift 2; done; exit 0',
      'sh',
      ...args,
    ]);
  }

  async abort(): Promise<void> {
    this.done = true;
    try {
      await this.release();
    } finally {
      if (!this.mounted) await rm(this.dir, { recursive: true, force: true });
    }
  }
}

export function createOverlaySnapshotter(rootfs: string, scratchDir: string): Snapshotter {
  return {
    engine: 'overlay',
    async begin(opts: { exclude: string[] }): Promise<StepSnapshot> {
      await mkdir(scratchDir, { recursive: true });
      const dir = await mkdtemp(join(scratchDir, 'ovl-'));
      for (const sub of ['upper', 'work', 'merged']) await mkdir(join(dir, sub));
      const userns = await inUserNamespace();
      try {
        await mountOverlay(rootfs, join(dir, 'upper'), join(dir, 'work'), join(dir, 'merged'), userns);
      } catch (e) {
        await rm(dir, { recursive: true, force: true });
        throw e;
      }
      return new OverlayStep(rootfs, dir, opts.exclude, userns);
    },
  };
}
