/**
 * The kiln layer cache directory as a GitHub Actions cache entry: keys and a cheap listing hash
 * (paths, types, sizes) that tells the post step whether the build changed the directory.
 */
import { createHash } from 'node:crypto';
import { readdir, lstat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { TREE_STORE_DIR } from '../../cache/tree-store.ts';

export interface CacheKeys {
  primary: string;
  restore: string[];
}

/**
 * `<cache-key|kiln>-<os>-<sha256(Dockerfile)>-<run id>-<attempt>`: cache entries are immutable, so each
 * run saves under a key of its own and restores the newest entry for the same Dockerfile, else the
 * newest for the same prefix and os.
 */
export function cacheKeys(
  prefix: string,
  os: string,
  dockerfileHash: string,
  runId: string,
  attempt: string,
): CacheKeys {
  const base = `${prefix || 'kiln'}-${os}`;
  return {
    primary: `${base}-${dockerfileHash}-${runId || 'local'}-${attempt || '1'}`,
    restore: [`${base}-${dockerfileHash}-`, `${base}-`],
  };
}

/**
 * The paths saved and restored (the same list both ways: it is part of the entry's version). The
 * extracted-tree store stays out: it is the blobs uncompressed again, so it would multiply the
 * entry's size, and a cold runner rebuilds the part it needs from the blobs. `dir` alone would
 * take everything, since the cache client hands matched directories to tar whole; so the entries
 * of dir are listed one by one and the store is taken out of that list.
 */
export function cachePaths(dir: string): string[] {
  return [join(dir, '*'), `!${join(dir, TREE_STORE_DIR)}`];
}

/**
 * sha256 over `relpath type size` of every entry under dir; '' when dir does not exist. Not mtimes:
 * kiln touches the entries and blobs it hits (its TTL clock), so a build served wholly from the
 * cache would otherwise look changed and upload the whole directory again as a new entry.
 */
export async function listingHash(dir: string): Promise<string> {
  const h = createHash('sha256');
  let n = 0;
  async function walk(d: string): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(d)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const name of names) {
      if (d === dir && name === TREE_STORE_DIR) continue; // not saved (cachePaths), so not compared
      const p = join(d, name);
      const st = await lstat(p);
      const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f';
      h.update(`${relative(dir, p)}\0${type}\0${st.isDirectory() ? 0 : st.size}\n`);
      n++;
      if (st.isDirectory()) await walk(p);
    }
  }
  await walk(dir);
  return n === 0 ? '' : h.digest('hex');
}
