/**
 * Picks the snapshot engine: overlay when the builder may mount overlayfs (fast: the change is the
 * upper dir), walk otherwise (a metadata index compared before and after each step).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../util/errors.ts';
import { createOverlaySnapshotter, inUserNamespace, mountOverlay, unmount } from './snapshot-overlay.ts';
import { createWalkSnapshotter } from './snapshot-walk.ts';
import type { SnapshotEngine, Snapshotter } from './types.ts';

export function createSnapshotter(engine: SnapshotEngine, rootfs: string, scratchDir: string): Snapshotter {
  switch (engine) {
    case 'overlay':
      return createOverlaySnapshotter(rootfs, scratchDir);
    case 'walk':
      return createWalkSnapshotter(rootfs);
    default:
      throw new KilnError('usage', 'SNAPSHOT_ENGINE', `unknown snapshot engine: ${String(engine)}`, {
        hint: 'use overlay or walk',
      });
  }
}

/** Really mounts a tiny overlay under `scratchDir` (and unmounts it): true when that works here. */
export async function overlayAvailable(scratchDir: string): Promise<boolean> {
  let dir: string | undefined;
  try {
    await mkdir(scratchDir, { recursive: true });
    dir = await mkdtemp(join(scratchDir, 'ovl-probe-'));
    const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => join(dir!, d));
    for (const d of [lower!, upper!, work!, merged!]) await mkdir(d);
    await writeFile(join(lower!, 'probe'), 'x');
    await mountOverlay(lower!, upper!, work!, merged!, await inUserNamespace());
    try {
      await writeFile(join(merged!, 'probe'), 'y');
    } finally {
      await unmount(merged!);
    }
    return true;
  } catch {
    return false;
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
