/** `kiln plan` and `kiln build --dry-run`: parse, plan and print, without touching a registry. */
import { resolve } from 'node:path';
import type { BuildOptions } from '../options.ts';
import { planDockerfile } from '../builder.ts';
import { materializeContext } from '../context/fetch.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { renderPlan } from '../plan/render.ts';

export async function planForOptions(opts: BuildOptions): Promise<BuildPlan> {
  const ctx = await materializeContext(
    opts,
    resolve(opts.workDir, `plan-context-${process.pid}-${Date.now()}`),
  );
  try {
    return (await planDockerfile(ctx.dir, opts)).plan;
  } finally {
    await ctx.cleanup();
  }
}

export async function printPlan(opts: BuildOptions, out: (s: string) => void): Promise<BuildPlan> {
  const plan = await planForOptions(opts);
  out(renderPlan(plan));
  return plan;
}
