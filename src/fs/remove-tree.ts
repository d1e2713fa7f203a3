/**
 * Deleting a build's work directory (tens of thousands of entries: stage trees, base trees, blobs).
 * GNU rm is about twice as fast as Node's recursive rm here, and `--one-file-system` keeps it out of
 * anything still mounted inside (a mount a failed step could not release), which must never be
 * emptied. The top-level entries go in parallel: unlinking is mostly kernel time.
 */
import { spawn } from 'node:child_process';
import { runCommand } from '../util/command.ts';
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Never into another filesystem: a mount left inside (a step that could not release it) is kept. */
const RM_ARGS = ['-rf', '--one-file-system', '--'];

/** 'missing' when there is no rm to run; a failure of rm itself (a mount inside) is left alone. */
async function rmRf(path: string): Promise<'done' | 'missing'> {
  const r = await runCommand('rm', [...RM_ARGS, path], { stdout: 'ignore' });
  return r.missing ? 'missing' : 'done';
}

/** Removes `dir` and everything in it; never throws (cleanup must not hide the build's own result). */
export async function removeTree(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => null);
  if (names === null) return;
  const got = await Promise.all(names.map((n) => rmRf(join(dir, n))));
  // No rm binary at all: Node's rm (which would cross into mounts, but without rm nothing mounts).
  if (got.includes('missing')) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  else await rmdir(dir).catch(() => undefined);
}

/**
 * Starts removing `dir` in a detached, niced `rm` that outlives kiln, and returns at once: the image
 * is pushed by then, and unlinking a large tree can take longer than the build (20,000 fresh files:
 * 6-8 s of journal writes on a small CI disk). Returns false when no rm could be started.
 */
export function removeTreeInBackground(dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('nice', ['-n', '10', 'rm', ...RM_ARGS, dir], {
      detached: true,
      stdio: 'ignore',
    });
    p.on('error', () => resolve(false));
    p.on('spawn', () => {
      p.unref();
      resolve(true);
    });
  });
}
