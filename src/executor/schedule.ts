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
  const done = new Map<number, Promise<void>>();
  for (const index of plan.order) {
    const deps = plan.stages[index]!.deps.map((d) => done.get(d)!);
    done.set(
      index,
      (async () => {
        await Promise.all(deps);
        await slots.run(() => buildStage(index));
      })(),
    );
  }
  const results = await Promise.allSettled(done.values());
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** At most `n` tasks at once. */
class Limiter {
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
