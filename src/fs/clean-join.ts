/**
 * path.join for the per-entry loops of snapshots and layer writing. node's join normalizes its
 * result character by character; on a 20,000-file step those strings were the largest part of the
 * heap's growth (issue 16: peak RSS). The parts these loops join are nearly always clean already (a
 * readdir name, an image path the walk made), and for clean parts plain concatenation is exactly
 * what join returns; anything else still goes through join.
 */
import { posix } from 'node:path';

/** An absolute path with no empty, `.` or `..` component and no trailing slash ("/" itself is not). */
export function isCleanAbsolute(p: string): boolean {
  return (
    p.length > 1 &&
    p.charCodeAt(0) === 47 &&
    p.charCodeAt(p.length - 1) !== 47 &&
    !p.includes('//') &&
    !p.includes('/./') &&
    !p.includes('/../') &&
    !p.endsWith('/.') &&
    !p.endsWith('/..')
  );
}

/** posix.join(root, imagePath) for an absolute image path. */
export function joinUnder(root: string, imagePath: string): string {
  return isCleanAbsolute(root) && isCleanAbsolute(imagePath) ? root + imagePath : posix.join(root, imagePath);
}

/** posix.join(dir, name) for one directory entry's name. */
export function joinChild(dir: string, name: string): string {
  return isCleanAbsolute(dir) && name !== '' && name !== '.' && name !== '..' && !name.includes('/')
    ? `${dir}/${name}`
    : posix.join(dir, name);
}

/** posix.normalize('/' + p) without a trailing slash ("" for the root). */
export function normalizeImagePath(p: string): string {
  return isCleanAbsolute(p) ? p : posix.normalize('/' + p).replace(/\/+$/, '');
}
