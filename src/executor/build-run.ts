/**
 * What the stages of one build share: the inputs, the global ARG scope, the stages built so far
 * (their builders, final chain keys and lazy trees), one extraction per base image, the images read
 * and the step reports. Stages reach each other only through this.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildPlan, PlannedStage } from '../plan/plan.ts';
import { BuildArgs, GlobalScope, platformArgs } from '../plan/scope.ts';
import { ContextSource } from '../context/sources.ts';
import { IgnoreMatcher } from '../context/dockerignore.ts';
import type { NamedContext } from '../options.ts';
import type { LayerBlob, Platform } from '../image/types.ts';
import { formatPlatform } from '../image/platform.ts';
import { stagePlatform } from '../plan/stage-platform.ts';
import type { LayerCache } from '../cache/types.ts';
import { sourcesDigest, type StatIndex } from '../cache/sources-digest.ts';
import type { Logger } from '../log/logger.ts';
import type { TransferProgress } from '../log/transfer.ts';
import type { BuildOptions } from '../options.ts';
import type { StepReport } from '../result.ts';
import { KilnError } from '../util/errors.ts';
import { materializeBase, type BaseImageSource, type ResolvedBase } from './base.ts';
import type { ExecutorDeps } from './deps.ts';
import type { LazyRootfs } from './lazy-rootfs.ts';
import { BasePrefetch } from './base-prefetch.ts';
import type { StageBuilder } from './stage-builder.ts';
import type { KeyHelpers } from './step-cache.ts';
import type { SourceTree } from './steps/context.ts';

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
  onOutput?: (chunk: Buffer) => void;
  /** How steps are numbered in the log, and who hears when each ends (the CLI's progress lines). */
  progress?: StepProgress;
  /** Told of the bytes of each base layer extracted (the CLI's bars and progress lines). */
  transfers?: TransferProgress;
  /** The layer cache, when --cache is on. */
  cache?: { store: LayerCache; index: StatIndex };
  /** Stage labels name the platform (a build of several platforms). */
  labelPlatform?: boolean;
}

/** Where a step is: `[stage 2/3] [4/9]` (stage among the needed ones, step within its stage, FROM first). */
export interface StepPosition {
  stage: string;
  /** The stage's platform, in a build of several platforms. */
  platform?: string;
  stageNumber: number;
  stageCount: number;
  step: number;
  stepCount: number;
}

export interface StepProgress {
  /** The start of a step's log line; without progress it is `[stage]`. */
  prefix(p: StepPosition): string;
  /** A step ended (FROM included), with its report. */
  done(p: StepPosition, report: StepReport): void;
}

/** The target and the stages it is built FROM: the only ones whose layers end up in the image. */
export function imageStages(plan: Pick<BuildPlan, 'target' | 'stages'>): Set<number> {
  const out = new Set<number>();
  for (let i: number | undefined = plan.target; i !== undefined;) {
    out.add(i);
    const b: PlannedStage['base'] | undefined = plan.stages[i]?.base;
    i = b?.kind === 'stage' ? b.index : undefined;
  }
  return out;
}

export class BuildRun {
  readonly global: GlobalScope;
  readonly imageStages: Set<number>;
  private readonly keyHelpers: KeyHelpers | undefined;
  readonly built = new Map<number, StageBuilder>();
  /** Final chain key of each built stage: what COPY --from of it keys on. */
  readonly stageKeys = new Map<number, string>();
  readonly trees = new Map<number, LazyRootfs>();
  /** Image references the build read (bases, --from images), pinned. */
  readonly baseImages: string[] = [];
  readonly steps: StepReport[] = [];
  readonly hostsFile: string;
  readonly resolvConf: string;
  /** The stage that finished last (the target when the plan names none that was built). */
  last: StageBuilder | undefined;
  private readonly baseTrees = new Map<string, Promise<{ root: string; layers: LayerBlob[] }>>();
  /** Digest checks of cached blobs still running (CacheHit.verified): the run ends after them. */
  readonly verifications: Promise<void>[] = [];
  /** Base trees of waiting stages, cloned while the stages they read are built. */
  readonly prefetch: BasePrefetch = new BasePrefetch(this);

  private constructor(readonly inp: ExecuteInputs) {
    const buildArgs = new BuildArgs(
      new Map(Object.entries(inp.opts.buildArgs)),
      platformArgs(inp.targetPlatform, inp.buildPlatform, inp.plan.targetStage),
    );
    this.global = new GlobalScope(buildArgs);
    for (const a of inp.plan.globalArgs) this.global.values.set(a.name, a.value);
    this.imageStages = imageStages(inp.plan);
    this.hostsFile = join(inp.workDir, 'hosts');
    this.resolvConf = join(inp.workDir, 'resolv.conf');
    this.keyHelpers = inp.cache && {
      index: inp.cache.index,
      platform: formatPlatform(inp.targetPlatform),
      stageKey: (from) => {
        const st = this.stageByRef(from);
        return st ? this.stageKeys.get(st.index) : undefined;
      },
      imageDigest: async (ref) => {
        const named = this.named(ref);
        if (named?.kind === 'dir') return `dir:${await dirDigest(named.path, inp.cache!.index)}`;
        return (await inp.images.resolve(named?.ref ?? ref, inp.targetPlatform)).digest;
      },
    };
  }

  /** A run with its work dir and the /etc/hosts and /etc/resolv.conf every RUN sees in place. */
  static async start(inp: ExecuteInputs): Promise<BuildRun> {
    const run = new BuildRun(inp);
    if (inp.opts.singleSnapshot && inp.cache)
      inp.logger.warn(
        '--single-snapshot: the layer cache is not used (there are no per-step layers to reuse)',
      );
    await mkdir(inp.workDir, { recursive: true });
    await writeFile(run.hostsFile, '127.0.0.1\tlocalhost kiln\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    await writeFile(
      run.resolvConf,
      await readFile('/etc/resolv.conf').catch(() => Buffer.from('nameserver 127.0.0.53\n')),
    );
    return run;
  }

  get plan(): BuildPlan {
    return this.inp.plan;
  }

  get logger(): Logger {
    return this.inp.logger;
  }

  /** The image creation time: --timestamp, the epoch for --reproducible, else now. */
  created = (): string | undefined => {
    const o = this.inp.opts;
    if (o.timestamp !== undefined) return new Date(o.timestamp * 1000).toISOString();
    return o.reproducible ? new Date(0).toISOString() : new Date().toISOString();
  };

  /**
   * The platform a stage is built for: its FROM --platform, else the platform of the stage it is
   * built FROM (as BuildKit does), else the target's.
   */
  stagePlatform(index: number): Platform {
    return stagePlatform(this.plan, index, this.inp.targetPlatform);
  }

  /** The cache key helpers of a stage: its platform is part of every key. */
  keyHelpersFor(index: number): KeyHelpers | undefined {
    const h = this.keyHelpers;
    if (!h) return undefined;
    const platform = this.stagePlatform(index);
    return {
      ...h,
      platform: formatPlatform(platform),
      imageDigest: async (ref) => {
        const named = this.named(ref);
        if (named?.kind === 'dir') return h.imageDigest(ref);
        return (await this.inp.images.resolve(named?.ref ?? ref, platform)).digest;
      },
    };
  }

  /** How logs and step reports name a stage: its name or index, and its platform in a multi-platform build. */
  stageLabel(index: number): string {
    const st = this.plan.stages[index]!;
    const name = st.name ?? String(index);
    return this.inp.labelPlatform ? `${name} ${formatPlatform(this.stagePlatform(index))}` : name;
  }

  /** Takes a stage another run built (one shared by every platform) as if this run had built it. */
  adopt(from: BuildRun, index: number): void {
    const b = from.built.get(index);
    const key = from.stageKeys.get(index);
    const tree = from.trees.get(index);
    if (!b || !tree)
      throw new KilnError(
        'internal',
        'STAGE_NOT_BUILT',
        `shared stage ${index} was not built before it was used`,
      );
    this.built.set(index, b);
    if (key !== undefined) this.stageKeys.set(index, key);
    this.trees.set(index, tree);
  }

  /** The `--build-context` a --from value names: it wins over a stage of that name. */
  named(from: string): NamedContext | undefined {
    const n = from.toLowerCase();
    return Object.hasOwn(this.inp.opts.namedContexts, n) ? this.inp.opts.namedContexts[n] : undefined;
  }

  /** A --from value or FROM naming a stage: by name, else by index. */
  stageByRef(from: string): PlannedStage | undefined {
    if (this.named(from)) return undefined;
    const lower = from.toLowerCase();
    const byName = this.plan.stages.find((s) => s.name === lower);
    if (byName) return byName;
    if (/^\d+$/.test(from)) return this.plan.stages[Number(from)];
    return undefined;
  }

  /** One extraction per base image digest, shared by COPY --from=<image> and (cloned) by stages. */
  baseTree(base: ResolvedBase): Promise<{ root: string; layers: LayerBlob[] }> {
    let p = this.baseTrees.get(base.digest);
    if (!p) {
      p = (async () => {
        const root = join(
          this.inp.workDir,
          'images',
          base.digest.replace(/^sha256:/, '').slice(0, 16),
          'rootfs',
        );
        await rm(root, { recursive: true, force: true });
        const layers = await materializeBase(base, this.inp.images, root, this.inp.deps, {
          logger: this.logger,
          transfers: this.inp.transfers,
        });
        return { root, layers };
      })();
      this.baseTrees.set(base.digest, p);
    }
    return p;
  }

  /**
   * Tree for a `--from` value (stage, made real first; or image, for the reading stage's platform);
   * the context when undefined.
   */
  async sourceTree(from: string | undefined, platform: Platform): Promise<SourceTree> {
    if (from === undefined) return { root: this.inp.context.dir, preserveOwnership: false };
    const named = this.named(from);
    if (named?.kind === 'dir') return { root: named.path, preserveOwnership: false };
    if (named?.kind === 'image') from = named.ref;
    const st = this.stageByRef(from);
    if (st) {
      await this.trees.get(st.index)?.ensure();
      const b = this.built.get(st.index);
      if (!b)
        throw new KilnError('internal', 'STAGE_NOT_BUILT', `stage ${from} was not built before it was used`);
      return { root: b.rootfs, preserveOwnership: true };
    }
    const base = await this.inp.images.resolve(from, platform);
    if (!this.baseImages.includes(base.pinned)) this.baseImages.push(base.pinned);
    return { root: (await this.baseTree(base)).root, preserveOwnership: true };
  }
}

/** Content digest of a directory named context (every file, as COPY of the whole context keys it). */
async function dirDigest(dir: string, index: StatIndex): Promise<string> {
  const ctx = new ContextSource(dir, new IgnoreMatcher([]));
  const { sources } = await ctx.resolve('.', { file: dir, line: 0 });
  return sourcesDigest(sources, index);
}
