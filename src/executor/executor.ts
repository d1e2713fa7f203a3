/**
 * Runs a BuildPlan: each needed stage in order, from its base (image, earlier stage or scratch),
 * with the base image's ONBUILD triggers first, then its instructions. Returns the target stage's
 * image parts; assembling and publishing them is the caller's job.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { BuildPlan, PlannedStage } from '../plan/plan.ts';
import { StageScope, GlobalScope, BuildArgs, platformArgs } from '../plan/scope.ts';
import { parseDockerfile } from '../dockerfile/parser.ts';
import { parseInstruction } from '../dockerfile/instructions.ts';
import type { HistoryEntry, ImageConfig, LayerBlob, Platform } from '../image/types.ts';
import type { ContextSource } from '../context/sources.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import { runCommand } from '../util/command.ts';
import type { BuildOptions } from '../options.ts';
import type { ExecutorDeps } from './deps.ts';
import { materializeBase, type BaseImageSource, type ResolvedBase } from './base.ts';
import { DEFAULT_PATH, StageBuilder } from './stage-builder.ts';
import { dispatchExpanded, expandStep, touchesFilesystem } from './steps/dispatch.ts';
import { chainMetadata, stepKeyParts, type KeyHelpers } from './step-cache.ts';
import { explainMiss, hashParts } from '../cache/key.ts';
import type { CacheEntry, LayerCache } from '../cache/types.ts';
import type { StatIndex } from '../cache/sources-digest.ts';
import type { Instruction } from '../dockerfile/instructions.ts';
import type { SourceTree, StepContext } from './steps/context.ts';
import { getEnv, setLabels, setWorkdir } from './config-ops.ts';
import { formatPlatform } from '../image/platform.ts';
import type { StepReport } from '../result.ts';

export interface ExecuteInputs {
  plan: BuildPlan;
  opts: BuildOptions;
  deps: ExecutorDeps;
  images: BaseImageSource;
  context: ContextSource;
  logger: Logger;
  workDir: string;
  targetPlatform: Platform;
  buildPlatform: Platform;
  /** Device nodes cannot be created (rootless with a partial map): skip them when extracting. */
  skipDevices: boolean;
  onOutput?: (chunk: Buffer) => void;
  /** The layer cache, when --cache is on. */
  cache?: { store: LayerCache; index: StatIndex };
  /**
   * Stages may start as hard-link clones of one shared extraction of their base image. Only safe
   * when nothing writes into a stage rootfs in place: with the overlay engine every change lands as
   * a new inode moved in from the upper dir, so the shared files are never modified.
   */
  linkBaseTrees?: boolean;
}

export interface ExecutedImage {
  config: ImageConfig;
  layers: LayerBlob[];
  steps: StepReport[];
  /** Image references the build read (bases, --from images), pinned. */
  baseImages: string[];
}

function emptyConfig(p: Platform): ImageConfig {
  return {
    architecture: p.architecture,
    os: p.os,
    ...(p.variant ? { variant: p.variant } : {}),
    // BuildKit gives scratch images the default PATH.
    config: { Env: [`PATH=${DEFAULT_PATH}`] },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
}

export async function executePlan(inp: ExecuteInputs): Promise<ExecutedImage> {
  const { plan, opts, logger } = inp;
  const created = (): string | undefined =>
    opts.timestamp !== undefined
      ? new Date(opts.timestamp * 1000).toISOString()
      : opts.reproducible
        ? new Date(0).toISOString()
        : new Date().toISOString();
  const buildArgs = new BuildArgs(
    new Map(Object.entries(opts.buildArgs)),
    platformArgs(inp.targetPlatform, inp.buildPlatform, plan.targetStage),
  );
  const global = new GlobalScope(buildArgs);
  for (const a of plan.globalArgs) global.values.set(a.name, a.value);

  const hostsFile = join(inp.workDir, 'hosts');
  const resolvConf = join(inp.workDir, 'resolv.conf');
  await mkdir(inp.workDir, { recursive: true });
  await writeFile(hostsFile, '127.0.0.1\tlocalhost kiln\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  await writeFile(
    resolvConf,
    await readFile('/etc/resolv.conf').catch(() => Buffer.from('nameserver 127.0.0.53\n')),
  );

  const built = new Map<number, StageBuilder>();
  const baseImages: string[] = [];
  const steps: StepReport[] = [];

  const stageByRef = (from: string): PlannedStage | undefined => {
    const lower = from.toLowerCase();
    const byName = plan.stages.find((s) => s.name === lower);
    if (byName) return byName;
    if (/^\d+$/.test(from)) return plan.stages[Number(from)];
    return undefined;
  };

  /** One extraction per base image digest, shared by COPY --from=<image> and (cloned) by stages. */
  const baseTrees = new Map<string, Promise<{ root: string; layers: LayerBlob[] }>>();
  const baseTree = (base: ResolvedBase): Promise<{ root: string; layers: LayerBlob[] }> => {
    let p = baseTrees.get(base.digest);
    if (!p) {
      p = (async () => {
        const root = join(inp.workDir, 'images', base.digest.replace(/^sha256:/, '').slice(0, 16), 'rootfs');
        await rm(root, { recursive: true, force: true });
        const t = Date.now();
        const layers = await materializeBase(base, inp.images, root, inp.deps, inp.skipDevices);
        logger.debug(`base ${base.pinned} extracted in ${Date.now() - t} ms`);
        return { root, layers };
      })();
      baseTrees.set(base.digest, p);
    }
    return p;
  };
  const imageTree = async (ref: string): Promise<string> => {
    const base = await inp.images.resolve(ref, inp.targetPlatform);
    if (!baseImages.includes(base.pinned)) baseImages.push(base.pinned);
    return (await baseTree(base)).root;
  };

  const sourceTree = async (from: string | undefined): Promise<SourceTree> => {
    if (from === undefined) return { root: inp.context.dir, preserveOwnership: false };
    const st = stageByRef(from);
    if (st) {
      const b = built.get(st.index);
      if (!b)
        throw new KilnError('internal', 'STAGE_NOT_BUILT', `stage ${from} was not built before it was used`);
      return { root: b.rootfs, preserveOwnership: true };
    }
    return { root: await imageTree(from), preserveOwnership: true };
  };

  // The target and the stages it is built FROM: the only ones whose layers end up in the image.
  const imageStages = new Set<number>();
  for (let i: number | undefined = plan.target; i !== undefined;) {
    imageStages.add(i);
    const b: PlannedStage['base'] | undefined = plan.stages[i]?.base;
    i = b?.kind === 'stage' ? b.index : undefined;
  }

  let last: StageBuilder | undefined;
  /** Per stage: makes its rootfs real (base + cached layers) the first time something needs it. */
  const ensureRootfs = new Map<number, () => Promise<void>>();
  const stageKeys = new Map<number, string>();
  const keyHelpers: KeyHelpers | undefined = inp.cache
    ? {
        index: inp.cache.index,
        platform: formatPlatform(inp.targetPlatform),
        stageKey: (from) => {
          const st = stageByRef(from);
          return st ? stageKeys.get(st.index) : undefined;
        },
        imageDigest: async (ref) => (await inp.images.resolve(ref, inp.targetPlatform)).digest,
      }
    : undefined;

  const buildStage = async (index: number): Promise<void> => {
    const stage = plan.stages[index]!;
    const label = stage.name ?? String(index);
    const stageDir = join(inp.workDir, 'stages', String(index));
    const rootfs = join(stageDir, 'rootfs');
    await rm(stageDir, { recursive: true, force: true });
    await mkdir(rootfs, { recursive: true });
    let config: ImageConfig;
    let layers: LayerBlob[] = [];
    let history: HistoryEntry[] = [];
    let chain: string;
    let materializeBaseTree: () => Promise<void>;
    const t0 = Date.now();
    if (stage.base.kind === 'scratch') {
      config = emptyConfig(inp.targetPlatform);
      chain = `scratch:${formatPlatform(inp.targetPlatform)}`;
      materializeBaseTree = async () => undefined;
    } else if (stage.base.kind === 'stage') {
      const parentIndex = stage.base.index;
      const parent = built.get(parentIndex)!;
      config = structuredClone(parent.config);
      layers = [...parent.layers];
      history = [...parent.history];
      chain = `stage:${stageKeys.get(parentIndex)!}`;
      materializeBaseTree = async () => {
        await ensureRootfs.get(parentIndex)!();
        await copyTree(parent.rootfs, rootfs, false);
      };
    } else {
      logger.info(`[${label}] FROM ${stage.base.ref}`);
      const base = await inp.images.resolve(stage.base.ref, inp.targetPlatform);
      baseImages.push(base.pinned);
      layers = base.layers.map((l) => ({ ...l }));
      config = structuredClone(base.config);
      config.rootfs = { type: 'layers', diff_ids: layers.map((l) => l.diffId) };
      history = [...(base.config.history ?? [])];
      config.config ??= {};
      if (!config.config.Env?.some((e) => e.startsWith('PATH=')))
        config.config.Env = [`PATH=${DEFAULT_PATH}`, ...(config.config.Env ?? [])];
      chain = `image:${base.digest}:${formatPlatform(inp.targetPlatform)}`;
      materializeBaseTree = async () => {
        let got: LayerBlob[];
        if (inp.linkBaseTrees) {
          const shared = await baseTree(base);
          await copyTree(shared.root, rootfs, true);
          got = shared.layers;
        } else got = await materializeBase(base, inp.images, rootfs, inp.deps, inp.skipDevices);
        // The builder shares these objects: give them their local paths for the push.
        got.forEach((l, i) => {
          if (layers[i]) layers[i]!.path = l.path;
        });
      };
    }
    steps.push({
      stage: label,
      instruction: stage.from.original,
      line: stage.from.at.line,
      cache: 'none',
      durationMs: Date.now() - t0,
    });
    const triggers = stage.base.kind === 'scratch' ? [] : (config.config?.OnBuild ?? []);
    if (config.config) config.config.OnBuild = null;
    const builder = new StageBuilder(
      inp.deps,
      {
        name: label,
        rootfs,
        scratchDir: join(stageDir, 'scratch'),
        config,
        baseLayers: [],
        history,
        layerOptions: {
          compression: opts.compression,
          compressionLevel: opts.compressionLevel,
          ...(opts.timestamp !== undefined
            ? { clampMtime: opts.timestamp }
            : opts.reproducible
              ? { clampMtime: 0 }
              : {}),
          outDir: join(inp.workDir, 'blobs'),
        },
        ignorePaths: opts.ignorePaths,
        createdAt: created,
        hostname: 'kiln',
        writeLayers: inp.cache !== undefined || imageStages.has(index),
        hostsFile,
        resolvConfFile: resolvConf,
      },
      logger,
    );
    builder.layers.push(...layers);
    // Cached layers wait here until a step (or another stage) needs the real tree.
    const pending: string[] = [];
    let real: Promise<void> | undefined;
    const ensure = (): Promise<void> => {
      real ??= (async () => {
        const t = Date.now();
        await materializeBaseTree();
        logger.debug(`[${label}] base tree ready in ${Date.now() - t} ms`);
        for (const blob of pending)
          await inp.deps.extractLayer(blob, rootfs, { skipDevices: inp.skipDevices });
        pending.length = 0;
      })();
      return real;
    };
    ensureRootfs.set(index, ensure);
    const scope = new StageScope(global, getEnv(config));
    const ctx: StepContext = {
      builder,
      scope,
      escape: plan.escape,
      context: inp.context,
      sourceTree: async (from) => {
        const st = from === undefined ? undefined : stageByRef(from);
        if (st) await ensureRootfs.get(st.index)?.();
        return sourceTree(from);
      },
      opts,
      tmpDir: join(stageDir, 'tmp'),
      cacheDir: join(inp.workDir, 'cache'),
      logger,
      ...(inp.onOutput ? { onOutput: inp.onOutput } : {}),
    };
    await mkdir(ctx.tmpDir, { recursive: true });

    const runOne = async (raw: Instruction, text: string, slot: string): Promise<void> => {
      const t = Date.now();
      const ins = expandStep(raw, ctx);
      if (!ins) return;
      const short = text.length > 120 ? text.slice(0, 120) + '…' : text;
      const cacheable =
        inp.cache !== undefined &&
        touchesFilesystem(ins) &&
        !(ins.kind === 'run' && !opts.cache.runLayers) &&
        !((ins.kind === 'copy' || ins.kind === 'add') && !opts.cache.copyLayers);
      let reason: string | undefined;
      if (cacheable && inp.cache && keyHelpers) {
        const parts = await stepKeyParts(ins, ctx, chain, keyHelpers);
        if (parts) {
          const key = hashParts(parts);
          const hit = await inp.cache.store.get(key);
          const previous = hit ? null : await inp.cache.store.previousParts(slot);
          await inp.cache.store.rememberParts(slot, parts);
          if (hit) {
            builder.applyCached(hit.entry, hit.blobPath);
            if (hit.blobPath) {
              // Once the tree is real (an earlier step ran), a cached layer must land in it now.
              if (real) {
                await real;
                await inp.deps.extractLayer(hit.blobPath, rootfs, { skipDevices: inp.skipDevices });
              } else pending.push(hit.blobPath);
            }
            if (ins.kind === 'workdir') setWorkdir(builder.config, ins.value);
            chain = key;
            logger.info(`[${label}] ${short} (cached, ${hit.from})`);
            steps.push({
              stage: label,
              instruction: text,
              line: raw.at.line,
              cache: 'hit',
              durationMs: Date.now() - t,
            });
            return;
          }
          reason = explainMiss(previous, parts);
          logger.info(`[${label}] ${short} (cache miss: ${reason})`);
          await ensure();
          const before = builder.layers.length;
          await dispatchExpanded(ins, ctx);
          const made = builder.layers.length > before ? builder.layers[builder.layers.length - 1] : undefined;
          const createdBy = builder.history[builder.history.length - 1]?.created_by ?? text;
          const entry: CacheEntry = made
            ? {
                version: 1,
                key,
                createdBy,
                emptyLayer: false,
                layer: {
                  digest: made.descriptor.digest,
                  diffId: made.diffId,
                  size: made.descriptor.size,
                  mediaType: made.descriptor.mediaType,
                },
              }
            : { version: 1, key, createdBy, emptyLayer: true };
          await inp.cache.store.put(entry, made?.path);
          chain = key;
          steps.push({
            stage: label,
            instruction: text,
            line: raw.at.line,
            cache: 'miss',
            cacheReason: reason,
            durationMs: Date.now() - t,
          });
          return;
        }
      }
      logger.info(`[${label}] ${short}`);
      if (touchesFilesystem(ins)) await ensure();
      await dispatchExpanded(ins, ctx);
      chain = chainMetadata(chain, ins);
      steps.push({
        stage: label,
        instruction: text,
        line: raw.at.line,
        cache: 'none',
        durationMs: Date.now() - t,
      });
    };

    for (const [ti, trigger] of triggers.entries()) {
      const ast = parseDockerfile(trigger, `${stage.from.at.file} (ONBUILD of ${stage.from.image})`);
      for (const raw of ast.instructions) {
        const ins = parseInstruction(
          { ...raw, line: stage.from.at.line },
          { escape: plan.escape, file: stage.from.at.file },
        );
        await runOne(ins, `ONBUILD ${raw.original}`, slotName(plan.file, label, `onbuild-${ti}`));
      }
    }
    for (const [pi, p] of stage.instructions.entries()) {
      await runOne(p.instruction, p.instruction.original, slotName(plan.file, label, String(pi)));
    }
    stageKeys.set(index, chain);
    built.set(index, builder);
    last = builder;
  };

  // Independent stages run at the same time (bounded by cores); a stage starts once the stages it
  // reads from are done. A failure stops dependents; stages already running finish first so that
  // no mount or scratch dir is left behind.
  const slots = new Limiter(Math.max(1, Math.min(availableParallelism(), 4)));
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
  // The target's tree is only needed on disk when something reads it; outputs use the blobs.
  const target = built.get(plan.target) ?? last!;
  const config = target.config;
  if (Object.keys(opts.labels).length) setLabels(config, Object.entries(opts.labels));
  config.history = target.history;
  const createdAt = created();
  if (createdAt) config.created = createdAt;
  config.architecture = inp.targetPlatform.architecture;
  config.os = inp.targetPlatform.os;
  logger.debug(`built ${formatPlatform(inp.targetPlatform)} image with ${target.layers.length} layers`);
  return { config, layers: target.layers, steps, baseImages };
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

/** A stable name for a step's position, so a later build can say why its key changed. */
function slotName(file: string, stage: string, step: string): string {
  return createHash('sha256').update(`${file}\0${stage}\0${step}`).digest('hex').slice(0, 32);
}

/**
 * `cp -a` keeps owners, modes, times, xattrs, hardlinks and device nodes, which fs.cp does not.
 * `link`: files become hard links to the originals (directories are still copied), 0.13 s instead
 * of 0.7 s for a copy or 2.6 s for an extraction of debian:bookworm's 6,676 entries.
 */
async function copyTree(from: string, to: string, link: boolean): Promise<void> {
  const r = await runCommand('cp', ['-a', link ? '--link' : '--reflink=auto', `${from}/.`, `${to}/`], {
    stdout: 'ignore',
  });
  if (r.code !== 0)
    throw new KilnError('fs', 'STAGE_COPY_FAILED', `copying stage rootfs failed: ${r.stderr.trim()}`);
}
