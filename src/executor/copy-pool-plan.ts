/**
 * Which file pool entries a COPY of context sources will look for, known before the stage's tree
 * exists (for src/fs/pool-fill.ts). The image path of each file is taken as written, under the
 * destination: when the tree later redirects it (a symlinked destination directory) the COPY's keys
 * differ and those entries simply go unused. Left out: what the COPY does not take from the pool
 * (symlinks, files with more than one link, files over SMALL_FILE), what is pooled already, and a
 * single file copied to a name that is a directory only if the tree says so.
 */
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join, posix, relative } from 'node:path';
import type { CopySource } from '../context/sources.ts';
import type { FilePool } from '../fs/file-pool.ts';
import type { FillItem } from '../fs/pool-fill.ts';
import { TimeSlicer } from '../util/event-loop.ts';
import { copiedFileMeta, destinationOf, SMALL_FILE, type CopyOptions } from './copy-files.ts';

/**
 * Walked in time slices (event-loop.ts): it runs while the tree is being made, whose extraction and
 * clone are chains of I/O callbacks on this thread (done in one go, a 5,000-file plan held the base
 * extraction's start back by ~140 ms).
 */
export async function planPoolFill(
  pool: FilePool,
  sources: readonly CopySource[],
  opts: CopyOptions,
): Promise<FillItem[]> {
  const { destAbs, destIsDirSyntax } = destinationOf(opts);
  const out: FillItem[] = [];
  const file = (from: string, st: Stats, imagePath: string): void => {
    if (!st.isFile() || st.nlink !== 1 || st.size > SMALL_FILE) return;
    const meta = copiedFileMeta(st, opts);
    const key = pool.key(st, imagePath, meta);
    if (pool.has(key)) return;
    out.push({
      from,
      key,
      mode: meta.mode,
      uid: meta.uid,
      gid: meta.gid,
      mtimeMs: meta.mtime.getTime(),
      ino: st.ino,
      size: st.size,
      srcMtimeMs: st.mtimeMs,
      srcCtimeMs: st.ctimeMs,
    });
  };
  // Walked as copyIntoRoot walks: names sorted, --exclude and .dockerignore matched relative to the
  // top-level source.
  const slicer = new TimeSlicer();
  const dir = async (base: string, host: string, imageDir: string): Promise<void> => {
    await slicer.maybeYield();
    for (const name of readdirSync(host).sort()) {
      const from = join(host, name);
      if (opts.skip?.(from, relative(base, from))) continue;
      const st = lstatSync(from);
      const imagePath = posix.join(imageDir, name);
      if (st.isDirectory()) await dir(base, from, imagePath);
      else file(from, st, imagePath);
    }
  };
  for (const s of sources) {
    const st = lstatSync(s.hostPath, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) await dir(s.hostPath, s.hostPath, destAbs);
    else if (destIsDirSyntax && !opts.skip?.(s.hostPath, ''))
      file(s.hostPath, st, posix.join(destAbs, posix.basename(s.relPath)));
  }
  return out;
}
