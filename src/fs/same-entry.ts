/**
 * The one rule both snapshot engines decide "changed" by, so that the same RUN gives the same layer
 * whichever engine ran it. It is the rule of containerd's continuity differ (`fs.Changes`' sameFile,
 * which BuildKit's overlay differ also applies to the upper dir):
 *
 * - type, permission bits, owner, group and device number must be equal;
 * - the xattrs that belong in an image must be equal (continuity compares security.capability;
 *   kiln carries every kept xattr into layers, so it compares those);
 * - a directory is then unchanged: its size and mtime only say that entries came or went, and those
 *   entries are changes of their own (the directory goes into the layer as their parent);
 * - anything else also needs equal size and mtime to the nanosecond. When both mtimes have zero
 *   nanoseconds they may have been truncated (every file extracted from a tar layer has them), so the
 *   content decides: a symlink's target, a regular file's bytes (an empty file needs no read);
 * - ctime never decides: chown or chmod to the same value, `touch` to the same time, a new hardlink,
 *   or a rename away and back change it and change nothing an image can carry.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** What the rule looks at, from a bigint lstat (plus a symlink's target when the caller has it). */
export interface EntryMeta {
  /** Type and permission bits (st_mode). */
  mode: bigint;
  uid: bigint;
  gid: bigint;
  size: bigint;
  mtimeNs: bigint;
  rdev: bigint;
  /** Symlinks: the target, when read. */
  target?: string;
}

/** `content`: the metadata are equal but the mtimes may be truncated: the bytes (or target) decide. */
export type Sameness = 'same' | 'changed' | 'content';

const S_IFMT = 0o170000n;
const S_IFDIR = 0o040000n;
const S_IFREG = 0o100000n;
const S_IFLNK = 0o120000n;
const NS = 1_000_000_000n;

export function isDirMode(mode: bigint): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}

export function isFileMode(mode: bigint): boolean {
  return (mode & S_IFMT) === S_IFREG;
}

/** The metadata part of the rule (xattrs are compared by `sameXattrs`, bytes by `sameContent`). */
export function compareMeta(a: EntryMeta, b: EntryMeta): Sameness {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.rdev !== b.rdev) return 'changed';
  if (isDirMode(a.mode)) return 'same';
  if (a.size !== b.size) return 'changed';
  const link = (a.mode & S_IFMT) === S_IFLNK;
  // Both sides know their target when the caller read it: a different target is a change whatever
  // the times say (the overlay engine reads them for every symlink it compares).
  if (link && a.target !== undefined && b.target !== undefined && a.target !== b.target) return 'changed';
  if (a.mtimeNs / NS !== b.mtimeNs / NS) return 'changed';
  const aNs = a.mtimeNs % NS;
  const bNs = b.mtimeNs % NS;
  if (aNs !== 0n || bNs !== 0n) return aNs === bNs ? 'same' : 'changed';
  if (link) return a.target !== undefined && b.target !== undefined ? 'same' : 'content';
  if (isFileMode(a.mode) && a.size > 0n) return 'content';
  return 'same';
}

/** Equal kept xattrs (absent and empty maps are equal). */
export function sameXattrs(
  a: ReadonlyMap<string, Buffer> | undefined,
  b: ReadonlyMap<string, Buffer> | undefined,
) {
  const an = a?.size ?? 0;
  const bn = b?.size ?? 0;
  if (an !== bn) return false;
  if (an === 0) return true;
  for (const [k, v] of a!) {
    const w = b!.get(k);
    if (!w || !w.equals(v)) return false;
  }
  return true;
}

const CHUNK = 64 * 1024;

/** Fills `buf` unless the file ends first; returns the bytes read. */
function readFull(fd: number, buf: Buffer): number {
  let n = 0;
  while (n < buf.length) {
    const r = readSync(fd, buf, n, buf.length - n, null);
    if (r === 0) break;
    n += r;
  }
  return n;
}

/** Byte-for-byte equality of two regular files of the same size (read in chunks, never whole). */
export function sameContent(pathA: string, pathB: string): boolean {
  const fa = openSync(pathA, 'r');
  try {
    const fb = openSync(pathB, 'r');
    try {
      const ba = Buffer.allocUnsafe(CHUNK);
      const bb = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const na = readFull(fa, ba);
        const nb = readFull(fb, bb);
        if (na !== nb) return false;
        if (na === 0) return true;
        if (ba.compare(bb, 0, nb, 0, na) !== 0) return false;
      }
    } finally {
      closeSync(fb);
    }
  } finally {
    closeSync(fa);
  }
}
