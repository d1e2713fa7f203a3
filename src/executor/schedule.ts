/**
 * Stage scheduling: independent stages run at the same time (bounded), a stage starts once the
 * stages it reads from are done. A failure stops dependents; stages already running finish first
 * so that no mount or scratch dir is left behind.
 */
import type { BuildPlan } from '../plan/plan.ts';

export async function scheduleStages(
  plan: Pick<BuildPlan, 'order' | 'stages'>,
  parallel: number,
  buildStage: (index: number) => Promise<void>,
): Promise<void> {
  const slots = new Limiter(Math.max(1, parallel));
  await scheduleStagesWith(plan, (index) => slots.run(() => buildStage(index)));
}

/**
 * The same order with the caller bounding the work: `runStage` takes its own slot (several builds
 * share one limiter), or none when it only waits for a stage another build runs.
 */
export async function scheduleStagesWith(
  plan: Pick<BuildPlan, 'order' | 'stages'>,
  runStage: (index: number) => Promise<void>,
): Promise<void> {
  const done = new Map<number, Promise<void>>();
  for (const index of plan.order) {
    const deps = plan.stages[index]!.deps.map((d) => done.get(d)!);
    done.set(
      index,
      (async () => {
        await Promise.all(deps);
        await runStage(index);
      })(),
    );
  }
  const results = await Promise.allSettled(done.values());
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** At most `n` tasks at once. */
export class Limiter {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  constructor(private readonly n: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}
