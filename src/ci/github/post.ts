/**
 * The GitHub Action's post step: saves the kiln cache directory, only when the build succeeded and
 * the directory changed since it was restored. A failed save is a warning, never a failed job.
 * `run()` is exported without side effects (for @github/local-action); entry-post.ts calls it.
 */
import * as core from '@actions/core';
import * as cache from '@actions/cache';
import { cachePaths, listingHash } from './cache-dir.ts';
import { STATE } from './main.ts';

export async function run(): Promise<void> {
  try {
    const dir = core.getState(STATE.cacheDir);
    if (!dir) {
      core.info('kiln post: cache off, nothing to save');
      return;
    }
    if (core.getState(STATE.built) !== 'true') {
      core.info('kiln post: the build did not succeed, cache not saved');
      return;
    }
    const before = core.getState(STATE.cacheHash);
    const after = await listingHash(dir);
    if (after === '' || after === before) {
      core.info('kiln post: cache directory unchanged, not saved');
      return;
    }
    const key = core.getState(STATE.cacheKey);
    // The v2 client does not throw when the service refuses or the upload fails: it logs a warning
    // (or an info line when the key already exists) and returns -1.
    const id = await cache.saveCache(cachePaths(dir), key);
    if (id === -1) {
      core.info(`kiln post: cache not saved as ${key} (see the cache client's message above)`);
      return;
    }
    core.info(`kiln post: cache saved as ${key}${id > 0 ? ` (id ${id})` : ''}`);
  } catch (e) {
    core.warning(`kiln post: cache not saved: ${e instanceof Error ? e.message : String(e)}`);
  }
}
