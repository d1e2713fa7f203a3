/**
 * A stage that reads another (COPY --from, RUN --mount from=) starts only once that stage is built,
 * but its own base tree does not depend on it. Once a stage it reads has missed the cache, the
 * reading stage's --from step will miss too (its key holds the read stage's chain) and need its
 * tree: that tree is cloned from the tree store (or from the build's extraction of that base, then
 * kept) meanwhile, into a dir of its own, while the stage it waits for still runs (a one-file
 * rebuild spent 90-250 ms cloning the final stage's debian base after its build stage had
 * finished). The stage takes the clone only when its first tree-touching step comes before any
 * cached layer (LazyRootfs: nothing pending); otherwise it is left unused.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { formatPlatform } from '../image/platform.ts';
import type { BuildRun } from './build-run.ts';
import { copyTree } from './tree-copy.ts';

export class BasePrefetch {
  private readonly started = new Map<number, Promise<string | undefined>>();

  constructor(private readonly run: BuildRun) {}

  /** Stage `index` missed the cache: warm the base trees of the stages that read it. */
  onMiss(index: number): void {
    const { plan, cache } = this.run.inp;
    if (!cache || this.run.inp.opts.singleSnapshot) return;
    for (const st of plan.stages) {
      if (st.index === index || !st.needed || !st.deps.includes(index)) continue;
      if (st.base.kind !== 'image' || this.started.has(st.index) || this.run.built.has(st.index)) continue;
      const p = this.warm(st.index, st.base.ref).catch(() => undefined);
      this.started.set(st.index, p);
    }
  }

  /** The dir holding stage `index`'s base tree, when one was prefetched and made. */
  take(index: number): Promise<string | undefined> {
    return this.started.get(index) ?? Promise.resolve(undefined);
  }

  /** Waits for every clone still running (before the work dir goes). */
  async settle(): Promise<void> {
    await Promise.all(this.started.values());
  }

  private async warm(index: number, ref: string): Promise<string | undefined> {
    const { inp } = this.run;
    await inp.deps.ready();
    const { trees: store, linkBaseTrees } = inp.deps.sharing();
    if (!store || !linkBaseTrees) return undefined;
    const platform = this.run.stagePlatform(index);
    const base = await inp.images.resolve(ref, platform);
    const dir = join(inp.workDir, 'prefetch', String(index));
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const t = Date.now();
    const ids = base.layers.map((l) => l.diffId);
    const where = formatPlatform(platform);
    if (!(await store.restore(ids, dir, where))) {
      // Not kept yet (a cold runner's store is empty): the build's one extraction of this base, made
      // now if no stage made it, cloned and kept for the next build, as the stage itself would.
      const shared = await this.run.baseTree(base);
      await copyTree(shared.root, dir, true);
      await store.keep(ids, dir, where);
    }
    this.run.logger.debug(
      `[${this.run.stageLabel(index)}] base tree prefetched in ${Date.now() - t} ms (while the stages it reads were built)`,
    );
    return dir;
  }
}
