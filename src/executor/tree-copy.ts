/** Copying a whole rootfs (a stage FROM an earlier stage, or a clone of a shared base tree). */
import { KilnError } from '../util/errors.ts';
import { runCommand } from '../util/command.ts';

/**
 * `cp -a` keeps owners, modes, times, xattrs, hardlinks and device nodes, which fs.cp does not.
 * `link`: files become hard links to the originals (directories are still copied), 0.13 s instead
 * of 0.7 s for a copy or 2.6 s for an extraction of debian:bookworm's 6,676 entries.
 */
export async function copyTree(from: string, to: string, link: boolean): Promise<void> {
  const r = await runCommand('cp', ['-a', link ? '--link' : '--reflink=auto', `${from}/.`, `${to}/`], {
    stdout: 'ignore',
  });
  if (r.code !== 0)
    throw new KilnError('fs', 'STAGE_COPY_FAILED', `copying stage rootfs failed: ${r.stderr.trim()}`);
}
