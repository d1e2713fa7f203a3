/** `kiln plan` and `kiln build --dry-run`: parse, plan and print, without touching a registry. */
import { resolve } from 'node:path';
import type { BuildOptions } from '../build/options.ts';
import { materializeContext } from '../context/fetch.ts';
import { hostPlatform, parsePlatform } from '../build/platform.ts';
import { loadDockerfile } from '../plan/load.ts';
import { planFromText, type BuildPlan } from '../plan/plan.ts';
import { renderPlan } from '../plan/render.ts';

export async function planForOptions(opts: BuildOptions): Promise<BuildPlan> {
  const ctx = await materializeContext(
    opts,
    resolve(opts.workDir, `plan-context-${process.pid}-${Date.now()}`),
  );
  const df = await loadDockerfile(ctx.dir, opts.dockerfile).finally(() => ctx.cleanup());
  const build = hostPlatform();
  const target = opts.platform ? parsePlatform(opts.platform) : build;
  return planFromText(df.text, df.path, {
    buildArgs: opts.buildArgs,
    ...(opts.target ? { target: opts.target } : {}),
    targetPlatform: target,
    buildPlatform: build,
  });
}

export async function printPlan(opts: BuildOptions, out: (s: string) => void): Promise<BuildPlan> {
  const plan = await planForOptions(opts);
  out(renderPlan(plan));
  return plan;
}
