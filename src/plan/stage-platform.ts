/**
 * Which platform each stage of a plan is built for, and which platforms need to execute RUN steps:
 * what the emulation check looks at before a build starts.
 */
import { formatPlatform, parsePlatform } from '../image/platform.ts';
import type { Platform } from '../image/types.ts';
import type { SourcePosition } from '../util/errors.ts';
import type { BuildPlan } from './plan.ts';

/**
 * A stage's FROM --platform, else the platform of the stage it is built FROM (as BuildKit does),
 * else the target's.
 */
export function stagePlatform(plan: BuildPlan, index: number, target: Platform): Platform {
  const st = plan.stages[index]!;
  if (st.platform) return parsePlatform(st.platform);
  if (st.base.kind === 'stage') return stagePlatform(plan, st.base.index, target);
  return target;
}

export interface RunNeed {
  platform: Platform;
  /** The first RUN of that platform. */
  at: SourcePosition;
}

/** Every platform a needed stage RUNs a command on, with its first RUN; COPY-only stages need none. */
export function runPlatforms(targets: ReadonlyArray<{ plan: BuildPlan; platform: Platform }>): RunNeed[] {
  const out = new Map<string, RunNeed>();
  for (const t of targets)
    for (const i of t.plan.order) {
      const run = t.plan.stages[i]!.instructions.find((p) => p.instruction.kind === 'run');
      if (!run) continue;
      const platform = stagePlatform(t.plan, i, t.platform);
      const key = formatPlatform(platform);
      if (!out.has(key)) out.set(key, { platform, at: run.instruction.at });
    }
  return [...out.values()];
}
