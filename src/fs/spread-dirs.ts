/**
 * Marks directories whose subdirectories hold unrelated trees (the work dir's build dirs, the tree
 * store's entries) with ext4's "top of directory hierarchy" attribute (chattr +T): the Orlov
 * allocator then spreads each new subdirectory, and the files made under it, over the block groups
 * (starting from a hash of its name) instead of putting it next to its siblings.
 *
 * Why: on ext4 without a journal (this class of CI VM) inode allocation skips every inode deleted
 * in the last 60-300 s, reading its inode table block each time (`recently_deleted` and
 * `find_get_block_common` were 24% of all CPU samples of a cold-runner build, `perf record -a`).
 * Each build's trees land where the previous build's just-removed trees were, so creating a file
 * walked past thousands of them: a cold runner's debian extraction took 4.5-6.4 s, 2.2-2.8 s with
 * its work dir marked. With a journal the attribute only changes where directories go.
 *
 * Best effort: other filesystems (tmpfs, overlay, xfs) and a missing chattr leave things as they
 * are; the build is the same either way. The attribute is not inherited, so only the containers
 * named here spread their children.
 */
import { spawnSync } from 'node:child_process';

/**
 * Sets +T on each of `dirs` (one chattr for all); never fails, returns whether chattr did. Waited
 * for in place (2-4 ms, once per build and per store) because the attribute must be set before the
 * first subdirectory is made.
 */
export function spreadSubdirs(dirs: readonly string[]): boolean {
  if (process.platform !== 'linux' || dirs.length === 0) return false;
  const r = spawnSync('chattr', ['+T', '--', ...dirs], { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}
