/**
 * Runs a BuildPlan: each needed stage in order (independent ones at once), from its base (image,
 * earlier stage or scratch), with the base image's ONBUILD triggers first, then its instructions.
 * Returns the target stage's image parts; assembling and publishing them is the caller's job.
 *
 * The parts: build-run.ts (what stages share), schedule.ts (order and parallelism), stage-run.ts
 * (one stage), stage-base.ts (where it starts), lazy-rootfs.ts (its tree on demand),
 * cached-step.ts (hit, miss, restore), steps/table.ts (what each instruction does).
 */
import { availableParallelism } from 'node:os';
import type { ImageConfig, LayerBlob, Platform } from '../image/types.ts';
import { formatPlatform } from '../image/platform.ts';
import type { StepReport } from '../result.ts';
import { BuildRun, type ExecuteInputs } from './build-run.ts';
import { setLabels } from './config-ops.ts';
import { scheduleStages } from './schedule.ts';
import { buildStage } from './stage-run.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';

export type { ExecuteInputs } from './build-run.ts';

export interface ExecutedImage {
  /** The target platform this image was built for. */
  platform: Platform;
  config: ImageConfig;
  layers: LayerBlob[];
  steps: StepReport[];
  /** Image references the build read (bases, --from images), pinned. */
  baseImages: string[];
}

export function executePlan(inp: ExecuteInputs): Promise<ExecutedImage> {
  return withCorruptCacheRetry(inp.logger, async () => {
    const run = await BuildRun.start(inp);
    try {
      await scheduleStages(inp.plan, Math.min(availableParallelism(), 4), (index) => buildStage(run, index));
    } finally {
      // A clone still running (its stage needed none, or the build failed) ends before the work dir goes.
      await run.prefetch.settle();
    }
    // No image goes out with a cached layer whose digest is not checked.
    await Promise.all(run.verifications);
    return targetImage(run);
  });
}

/**
 * Cached blobs are checked while the build goes on (CacheHit.verified). One that proves corrupt has
 * its entry dropped, and the whole plan runs again: that step misses then and is built, as when the
 * check came first. Each retry drops at least one entry, so this ends.
 */
export async function withCorruptCacheRetry<T>(logger: Logger, attempt: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof KilnError) || e.code !== 'CACHE_BLOB_CORRUPT') throw e;
      logger.warn(e.message);
    }
  }
}

/** The target's config and layers; its tree is only on disk when something read it. */
export function targetImage(run: BuildRun): ExecutedImage {
  const { inp } = run;
  const target = run.built.get(inp.plan.target) ?? run.last!;
  const config = target.config;
  if (Object.keys(inp.opts.labels).length) setLabels(config, Object.entries(inp.opts.labels));
  config.history = target.history;
  const createdAt = run.created();
  if (createdAt) config.created = createdAt;
  config.architecture = inp.targetPlatform.architecture;
  config.os = inp.targetPlatform.os;
  inp.logger.debug(`built ${formatPlatform(inp.targetPlatform)} image with ${target.layers.length} layers`);
  return {
    platform: inp.targetPlatform,
    config,
    layers: target.layers,
    steps: run.steps,
    baseImages: run.baseImages,
  };
}
