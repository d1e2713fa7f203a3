/**
 * Several target platforms in one build: one BuildRun per platform (each with its own plan, since
 * TARGETPLATFORM and the FROM lines expand per platform), all under one stage limiter sized to the
 * machine, sharing the blob store, the base-image source and the layer cache. A stage that does the
 * same for every target (FROM --platform=$BUILDPLATFORM, no target ARG in it, its dependencies
 * shared too) is built once, by the first platform's run, and adopted by the others: the
 * cross-compilation pattern, where a native stage is copied from into each target.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { BuildPlan } from '../plan/plan.ts';
import type { Platform } from '../image/types.ts';
import { BuildRun, type ExecuteInputs } from './build-run.ts';
import { executePlan, targetImage, withCorruptCacheRetry, type ExecutedImage } from './executor.ts';
import { Limiter, scheduleStagesWith } from './schedule.ts';
import { buildStage } from './stage-run.ts';

export interface PlatformTarget {
  platform: Platform;
  plan: BuildPlan;
}

/**
 * Stages whose work is the same in every plan: an explicit FROM --platform (or built FROM such a
 * stage), an equal fingerprint everywhere, and every dependency shared as well.
 */
export function sharedStages(plans: readonly BuildPlan[]): Set<number> {
  const shared = new Set<number>();
  const first = plans[0];
  if (!first || plans.length < 2) return shared;
  for (const i of first.order) {
    const st = first.stages[i]!;
    const pinned = st.platform !== undefined || (st.base.kind === 'stage' && shared.has(st.base.index));
    if (!pinned) continue;
    if (!plans.every((p) => p.stages[i]?.needed && p.stages[i]!.fingerprint === st.fingerprint)) continue;
    if (st.deps.every((d) => shared.has(d))) shared.add(i);
  }
  return shared;
}

/** One image per target platform, in the order given; the first failure fails the whole build. */
export async function executePlatforms(
  inp: Omit<ExecuteInputs, 'plan' | 'targetPlatform'>,
  targets: readonly PlatformTarget[],
  parallel = Math.min(availableParallelism(), 4),
): Promise<ExecutedImage[]> {
  if (targets.length === 1) {
    const t = targets[0]!;
    return [await executePlan({ ...inp, plan: t.plan, targetPlatform: t.platform })];
  }
  return withCorruptCacheRetry(inp.logger, () => executeEach(inp, targets, parallel));
}

async function executeEach(
  inp: Omit<ExecuteInputs, 'plan' | 'targetPlatform'>,
  targets: readonly PlatformTarget[],
  parallel: number,
): Promise<ExecutedImage[]> {
  const runs = await Promise.all(
    targets.map((t, i) =>
      BuildRun.start({
        ...inp,
        plan: t.plan,
        targetPlatform: t.platform,
        workDir: join(inp.workDir, `platform-${i}`),
        labelPlatform: true,
      }),
    ),
  );
  const shared = sharedStages(targets.map((t) => t.plan));
  const owner = runs[0]!;
  if (shared.size)
    inp.logger.info(
      `stages built once for all ${targets.length} platforms: ${[...shared].map((i) => owner.stageLabel(i)).join(', ')}`,
    );
  const slots = new Limiter(Math.max(1, parallel));
  const once = new Map<number, Promise<void>>();
  const buildShared = (index: number): Promise<void> => {
    let p = once.get(index);
    if (!p) {
      p = slots.run(() => buildStage(owner, index));
      once.set(index, p);
    }
    return p;
  };
  const results = await Promise.allSettled(
    runs.map((run) =>
      scheduleStagesWith(run.plan, async (index) => {
        if (!shared.has(index)) return slots.run(() => buildStage(run, index));
        // Waiting for another run's stage takes no slot: only the run building it does.
        await buildShared(index);
        if (run !== owner) run.adopt(owner, index);
      }),
    ),
  );
  await Promise.all(runs.map((r) => r.prefetch.settle()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  await Promise.all(runs.flatMap((r) => r.verifications));
  return runs.map(targetImage);
}
