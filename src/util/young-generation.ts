/**
 * Keeps V8's young generation at its starting size (1 MiB semi-spaces) for the CLI.
 *
 * Why: what kiln holds is file data in buffers outside the JS heap; its JS objects are few and
 * short-lived, except for bursts such as planning a 20,000-file layer, whose survivors make V8 double
 * the young generation up to 2 x 16 MiB, which it then keeps for the rest of the build. On the tree
 * benchmark that was 32 MB of a 150-170 MB peak RSS for no speed: the same build with the young
 * generation held small took as long (issue 16). `--max-semi-space-size` only counts at start-up,
 * so the growth factor is set instead, and set again whenever a worker thread starts: Node 20
 * applies the process's V8 flags anew when a worker boots, which puts the factor back to 2.
 */
import { setFlagsFromString } from 'node:v8';
import type { Worker } from 'node:worker_threads';

const FLAG = '--semi-space-growth-factor=1';
let wanted = false;

/** Called once by the CLI entry: library users keep V8's defaults. */
export function keepYoungGenerationSmall(): void {
  wanted = true;
  setFlagsFromString(FLAG);
}

/** Every worker kiln starts passes through here, so its boot does not undo the setting. */
export function watchWorker(w: Worker): Worker {
  if (!wanted) return w;
  // Once it runs, and again when it ends: a worker that loads more before running (a loader given
  // by --import) can apply the flags after 'online'.
  w.once('online', () => setFlagsFromString(FLAG));
  w.once('exit', () => setFlagsFromString(FLAG));
  return w;
}
