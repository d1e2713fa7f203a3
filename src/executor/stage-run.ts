/**
 * Building one stage: its base, its builder and step context, the base image's ONBUILD triggers,
 * then its instructions, each through its step module (and the cache when it is on), with one step
 * report per instruction.
 */
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseDockerfile } from '../dockerfile/parser.ts';
import { parseInstruction, type Instruction } from '../dockerfile/instructions.ts';
import type { FilePool } from '../fs/file-pool.ts';
import type { PlannedStage } from '../plan/plan.ts';
import { StageScope } from '../plan/scope.ts';
import type { StepReport } from '../result.ts';
import type { BuildRun, StepPosition } from './build-run.ts';
import { runCached, type StepOutcome } from './cached-step.ts';
import { getEnv } from './config-ops.ts';
import { LazyRootfs, type TreeReuse } from './lazy-rootfs.ts';
import { stageBase, type StageBase } from './stage-base.ts';
import { StageBuilder } from './stage-builder.ts';
import { chainMetadata, type KeyHelpers } from './step-cache.ts';
import { formatPlatform } from '../image/platform.ts';
import type { StepSnapshot } from '../fs/types.ts';
import type { StepContext } from './steps/context.ts';
import type { StepModule } from './steps/module.ts';
import { stepFor } from './steps/table.ts';

/** The one place a step report is made (FROM lines and instructions alike). */
function stepReport(
  stage: string,
  instruction: string,
  line: number,
  started: number,
  outcome: Pick<StepOutcome, 'cache' | 'cacheReason'>,
): StepReport {
  return {
    stage,
    instruction,
    line,
    cache: outcome.cache,
    ...(outcome.cacheReason !== undefined ? { cacheReason: outcome.cacheReason } : {}),
    durationMs: Date.now() - started,
  };
}

/** A stable name for a step's position, so a later build can say why its key changed. */
function slotName(file: string, stage: string, step: string): string {
  return createHash('sha256').update(`${file}\0${stage}\0${step}`).digest('hex').slice(0, 32);
}

export async function buildStage(run: BuildRun, index: number): Promise<void> {
  const stage = run.plan.stages[index]!;
  const label = run.stageLabel(index);
  const stageDir = join(run.inp.workDir, 'stages', String(index));
  const rootfs = join(stageDir, 'rootfs');
  const inflated = join(stageDir, 'inflated');
  await rm(stageDir, { recursive: true, force: true });
  await mkdir(rootfs, { recursive: true });
  const t0 = Date.now();
  const base = await stageBase(run, stage, label, rootfs);
  const triggers = stage.base.kind === 'scratch' ? [] : (base.config.config?.OnBuild ?? []);
  const where = {
    stage: label,
    ...(run.inp.labelPlatform ? { platform: formatPlatform(run.stagePlatform(index)) } : {}),
    stageNumber: run.plan.order.indexOf(index) + 1,
    stageCount: run.plan.order.length,
    stepCount: 1 + triggers.length + stage.instructions.length,
  };
  const fromReport = stepReport(label, stage.from.original, stage.from.at.line, t0, { cache: 'none' });
  run.steps.push(fromReport);
  run.inp.progress?.done({ ...where, step: 1 }, fromReport);
  if (base.config.config) base.config.config.OnBuild = null;
  const builder = newBuilder(run, index, label, stageDir, base);
  const single =
    run.inp.opts.singleSnapshot && run.imageStages.has(index) ? new StageSnapshot(run, builder) : undefined;
  const tree = new LazyRootfs(
    async () => {
      const t = Date.now();
      await base.materialize();
      run.logger.debug(`[${label}] base tree ready in ${Date.now() - t} ms`);
    },
    async (blob) => {
      const t = Date.now();
      await run.inp.deps.extractLayer(blob, rootfs, {});
      run.logger.debug(
        `[${label}] cached layer ${basename(blob).slice(0, 19)} restored in ${Date.now() - t} ms`,
      );
      if (blob.startsWith(inflated + '/')) await rm(blob, { force: true });
    },
    {
      onReal: async () => single?.begin(),
      reuse: treeReuse(run, base, rootfs, formatPlatform(run.stagePlatform(index))),
      ready: () => run.inp.deps.ready(),
      prepared: async () => {
        const dir = await run.prefetch.take(index);
        if (!dir) return false;
        // The rootfs is still the empty dir made above: the prefetched tree takes its place.
        await rmdir(rootfs);
        await rename(dir, rootfs);
        run.logger.debug(`[${label}] base tree taken from the prefetch`);
        return true;
      },
      ahead: (blob) => inflateAhead(run, blob, inflated),
    },
  );
  run.trees.set(index, tree);
  const ctx = await stepContext(run, index, builder, stageDir, base);
  const steps = new StageSteps(run, index, ctx, run.keyHelpersFor(index), tree, where, base.chain);
  try {
    await runSteps(run, stage, triggers, label, steps);
    await single?.commit(`single snapshot of stage ${label}`);
    await builder.settle();
  } catch (e) {
    // No layer may still be reading the tree when the failed build removes its work dir.
    await builder.settle().catch(() => undefined);
    throw e;
  }
  run.stageKeys.set(index, steps.chain);
  run.built.set(index, builder);
  run.last = builder;
}

/** Blobs smaller than this are extracted as they are: inflating them apart would gain nothing. */
const AHEAD_MIN_BYTES = 4 << 20;

/**
 * A cached gzip layer inflated to a plain tar in `dir` while the base is extracted (LazyRootfs
 * hooks.ahead); the blob itself when it is small, not gzip, or gzip fails (its extraction then
 * reports what is wrong).
 */
async function inflateAhead(run: BuildRun, blob: string, dir: string): Promise<string> {
  const st = await stat(blob).catch(() => null);
  if (!st || st.size < AHEAD_MIN_BYTES) return blob;
  await mkdir(dir, { recursive: true });
  const out = join(dir, `${basename(blob)}.tar`);
  const t = Date.now();
  if (!(await run.inp.deps.inflateLayer(blob, out))) return blob;
  run.logger.debug(
    `cached layer ${basename(blob).slice(0, 12)} inflated in ${Date.now() - t} ms (while the base was made)`,
  );
  return out;
}

/** The base image's ONBUILD triggers, then the stage's own instructions. */
async function runSteps(
  run: BuildRun,
  stage: PlannedStage,
  triggers: string[],
  label: string,
  steps: StageSteps,
): Promise<void> {
  for (const [ti, trigger] of triggers.entries()) {
    const ast = parseDockerfile(trigger, `${stage.from.at.file} (ONBUILD of ${stage.from.image})`);
    for (const raw of ast.instructions) {
      const ins = parseInstruction(
        { ...raw, line: stage.from.at.line },
        { escape: run.plan.escape, file: stage.from.at.file },
      );
      await steps.run(ins, `ONBUILD ${raw.original}`, slotName(run.plan.file, label, `onbuild-${ti}`));
    }
  }
  for (const [pi, p] of stage.instructions.entries())
    await steps.run(
      p.instruction,
      p.instruction.original,
      slotName(run.plan.file, label, String(pi)),
      pi === stage.instructions.length - 1,
    );
}

function newBuilder(
  run: BuildRun,
  index: number,
  label: string,
  stageDir: string,
  base: StageBase,
): StageBuilder {
  const { opts } = run.inp;
  const builder = new StageBuilder(
    run.inp.deps,
    {
      name: label,
      rootfs: join(stageDir, 'rootfs'),
      scratchDir: join(stageDir, 'scratch'),
      config: base.config,
      history: base.history,
      layerOptions: {
        compression: opts.compression,
        compressionLevel: opts.compressionLevel,
        ...(opts.timestamp !== undefined
          ? { clampMtime: opts.timestamp }
          : opts.reproducible
            ? { clampMtime: 0 }
            : {}),
        outDir: join(run.inp.workDir, 'blobs'),
      },
      ignorePaths: opts.ignorePaths,
      createdAt: run.created,
      hostname: 'kiln',
      // With --single-snapshot nothing is cached, so only the image's stages need layers.
      writeLayers: (run.inp.cache !== undefined && !opts.singleSnapshot) || run.imageStages.has(index),
      deferLayers: opts.singleSnapshot,
      hostsFile: run.hostsFile,
      resolvConfFile: run.resolvConf,
    },
    run.logger,
  );
  builder.layers.push(...base.layers);
  return builder;
}

async function stepContext(
  run: BuildRun,
  index: number,
  builder: StageBuilder,
  stageDir: string,
  base: StageBase,
): Promise<StepContext> {
  const ctx: StepContext = {
    builder,
    scope: new StageScope(run.global, getEnv(base.config)),
    escape: run.plan.escape,
    context: run.inp.context,
    sourceTree: (from) => run.sourceTree(from, run.stagePlatform(index)),
    opts: run.inp.opts,
    tmpDir: join(stageDir, 'tmp'),
    cacheDir: join(run.inp.workDir, 'cache'),
    logger: run.logger,
    ...(run.inp.onOutput ? { onOutput: run.inp.onOutput } : {}),
  };
  // The store is known once isolation is chosen: by then any step that copies has its tree.
  if (run.inp.cache) {
    const pool = (): FilePool | undefined => run.inp.deps.sharing().trees?.files;
    ctx.filePool = pool;
    ctx.filePoolReady = async () => {
      await run.inp.deps.ready();
      return pool();
    };
  }
  await mkdir(ctx.tmpDir, { recursive: true });
  return ctx;
}

/**
 * --single-snapshot, as Kaniko does it: the stage's tree is indexed once it is real, and its one
 * layer is the difference at the end of the stage. A stage that never touched its tree makes none.
 */
class StageSnapshot {
  private snap: StepSnapshot | undefined;
  private done = false;

  constructor(
    private readonly run: BuildRun,
    private readonly builder: StageBuilder,
  ) {}

  async begin(): Promise<void> {
    // Another stage reading this tree after it finished needs no baseline.
    if (this.done) return;
    this.snap = await this.run.inp.deps.beginTreeSnapshot(this.builder.rootfs, this.builder.excludes());
  }

  async commit(history: string): Promise<void> {
    this.done = true;
    if (this.snap) await this.builder.commitStageSnapshot(await this.snap.finish(), history);
  }
}

/** The steps of one stage, in order, carrying the chain key from one to the next. */
class StageSteps {
  constructor(
    private readonly build: BuildRun,
    private readonly index: number,
    private readonly ctx: StepContext,
    private readonly helpers: KeyHelpers | undefined,
    private readonly tree: LazyRootfs,
    private readonly where: Omit<StepPosition, 'step'>,
    public chain: string,
  ) {}

  private step = 1;

  private get label(): string {
    return this.where.stage;
  }

  /** `last`: the stage's last step, whose tree no later build starts from (nothing follows it). */
  async run(raw: Instruction, text: string, slot: string, last = false): Promise<void> {
    const t = Date.now();
    const pos: StepPosition = { ...this.where, step: ++this.step };
    const mod = stepFor(raw);
    const ins = mod.expand(raw, this.ctx);
    if (!ins) return;
    const head = this.build.inp.progress?.prefix(pos) ?? `[${this.label}]`;
    const logText = `${head} ${text.length > 120 ? text.slice(0, 120) + '…' : text}`;
    const cache = this.build.inp.cache;
    const helpers = this.helpers;
    const cacheable =
      !this.build.inp.opts.singleSnapshot &&
      cache !== undefined &&
      helpers !== undefined &&
      mod.cache === 'layer' &&
      (mod.cacheAllowed?.(this.build.inp.opts) ?? true);
    const outcome =
      (cacheable
        ? await runCached({
            store: cache.store,
            helpers,
            mod,
            ins,
            ctx: this.ctx,
            tree: this.tree,
            chain: this.chain,
            slot,
            logText,
            text,
            verifying: (check) => this.build.verifications.push(check),
          })
        : null) ?? (await this.runUncached(mod, ins, logText));
    this.chain = outcome.chain;
    if (outcome.cache === 'miss') this.build.prefetch.onMiss(this.index);
    // A miss means the layer cache is on, so every step of this stage wrote its layer (or an empty
    // one): the diff ids describe the tree exactly. After the last step the copy would only cost
    // time (0.7-0.8 s for 7,000 files here): a later build resumes before a step, never after all.
    if (outcome.cache === 'miss' && raw.kind === 'run' && !last)
      await this.tree.keepNow(this.ctx.builder.config.rootfs.diff_ids);
    const report = stepReport(this.label, text, raw.at.line, t, outcome);
    this.build.steps.push(report);
    this.build.inp.progress?.done(pos, report);
  }

  private async runUncached<I extends Instruction>(
    mod: StepModule<I>,
    ins: I,
    logText: string,
  ): Promise<StepOutcome> {
    this.ctx.logger.info(logText);
    if (mod.touchesFilesystem) await this.tree.ensure();
    await mod.run(ins, this.ctx);
    return { cache: 'none', chain: chainMetadata(this.chain, ins) };
  }
}

/**
 * The build's tree store, for a stage whose base tree its layers describe. Trees are kept per
 * platform: one of another platform is never cloned, whatever its layers.
 */
function treeReuse(run: BuildRun, base: StageBase, rootfs: string, platform: string): TreeReuse | undefined {
  if (!base.treeLayers) return undefined;
  // Called from LazyRootfs.ensure, after ExecutorDeps.ready(): the store (or none) is known then.
  const store = () => run.inp.deps.sharing().trees;
  return {
    baseLayers: base.treeLayers,
    restore: async (ids) => (await store()?.restore(ids, rootfs, platform)) ?? false,
    keep: async (ids) => store()?.keep(ids, rootfs, platform),
  };
}
