/**
 * Resolves an image path against a rootfs on the host as a chroot would: every symlink met on the way
 * is followed *inside* the root (absolute targets are relative to it, `..` stops at it), so the
 * result can never point outside the root.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { KilnError } from '../util/errors.ts';

const MAX_LINKS = 255;

/**
 * `followLast`: resolve a symlink in the last component too (true for "the directory I copy into",
 * false for "the entry I am about to replace").
 */
export async function resolveInRoot(root: string, imagePath: string, followLast = true): Promise<string> {
  // A few lstat calls: cheaper done directly than through the thread pool.
  return resolveInRootSync(root, imagePath, followLast);
}

/** resolveInRoot for synchronous callers such as the extraction hot loop. */
export function resolveInRootSync(root: string, imagePath: string, followLast = true): string {
  const parts = posix
    .normalize('/' + imagePath)
    .split('/')
    .filter(Boolean);
  const resolved: string[] = [];
  let links = 0;
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const host = posix.join(root, ...resolved, part);
    const isLast = parts.length === 0;
    let st;
    try {
      st = lstatSync(host);
    } catch {
      st = undefined;
    }
    if (!st) {
      // ENOENT, or ENOTDIR where a file stands in the way (created below as dirs). The walk goes on:
      // a later `..` (from a symlink's target) climbs back to components that exist, and those must
      // be resolved too; cutting the path textually would keep a symlink there unresolved.
      resolved.push(part);
      continue;
    }
    if (st.isSymbolicLink() && (!isLast || followLast)) {
      if (++links > MAX_LINKS) {
        throw new KilnError(
          'fs',
          'SYMLINK_LOOP',
          `too many levels of symbolic links resolving ${imagePath}`,
          {
            hint: 'a symlink in the image points back at itself',
          },
        );
      }
      const target = readlinkSync(host);
      if (target.startsWith('/')) resolved.length = 0;
      parts.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    resolved.push(part);
  }
  return posix.join(root, ...resolved);
}

/** The image path of a host path inside `root` ("/" for the root itself). */
export function imagePathOf(root: string, hostPath: string): string {
  const rel = posix.relative(root, hostPath);
  return rel === '' ? '/' : '/' + rel;
}
