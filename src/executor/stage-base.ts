/**
 * Where a stage starts: scratch, an earlier stage, or an image. Gives the starting config, layers,
 * history and chain key at once, and a way to put the base's tree on disk for when it is needed.
 */
import type { PlannedStage } from '../plan/plan.ts';
import type { HistoryEntry, ImageConfig, LayerBlob, Platform } from '../image/types.ts';
import { formatPlatform } from '../image/platform.ts';
import { materializeBase } from './base.ts';
import type { BuildRun } from './build-run.ts';
import { DEFAULT_PATH } from './stage-builder.ts';
import { copyTree } from './tree-copy.ts';
import { startChain } from './step-cache.ts';

export interface StageBase {
  config: ImageConfig;
  /** The base's layers; these objects join the stage's builder and get their local paths later. */
  layers: LayerBlob[];
  history: HistoryEntry[];
  /** Cache chain key of the state the stage starts from. */
  chain: string;
  /** The diff ids of the layers that give the base tree exactly; undefined when layers do not. */
  treeLayers: readonly string[] | undefined;
  /** Puts the base's tree into the stage's (empty) rootfs. */
  materialize(): Promise<void>;
}

export function emptyConfig(p: Platform): ImageConfig {
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

export async function stageBase(
  run: BuildRun,
  stage: PlannedStage,
  label: string,
  rootfs: string,
): Promise<StageBase> {
  const b = await baseOf(run, stage, label, rootfs);
  // The FROM line itself (every flag) starts the chain, on top of what it resolved to.
  return { ...b, chain: startChain(b.chain, stage.from) };
}

function baseOf(
  run: BuildRun,
  stage: PlannedStage,
  label: string,
  rootfs: string,
): Promise<StageBase> | StageBase {
  const base = stage.base;
  const platform = run.stagePlatform(stage.index);
  if (base.kind === 'scratch') return scratchBase(platform);
  if (base.kind === 'stage') return parentStageBase(run, base.index, rootfs);
  run.logger.info(`[${label}] FROM ${base.ref}`);
  return imageBase(run, base.ref, platform, rootfs);
}

function scratchBase(platform: Platform): StageBase {
  return {
    config: emptyConfig(platform),
    layers: [],
    history: [],
    chain: `scratch:${formatPlatform(platform)}`,
    treeLayers: [],
    materialize: async () => undefined,
  };
}

/** FROM an earlier stage: its final config, layers and history, and a copy of its tree. */
function parentStageBase(run: BuildRun, parentIndex: number, rootfs: string): StageBase {
  const parent = run.built.get(parentIndex)!;
  return {
    config: structuredClone(parent.config),
    layers: [...parent.layers],
    history: [...parent.history],
    chain: `stage:${run.stageKeys.get(parentIndex)!}`,
    // A stage whose layers were never written (it does not reach the image) has a tree its layers
    // do not describe.
    treeLayers: undefined,
    materialize: async () => {
      await run.trees.get(parentIndex)!.ensure();
      await copyTree(parent.rootfs, rootfs, false);
    },
  };
}

async function imageBase(run: BuildRun, ref: string, platform: Platform, rootfs: string): Promise<StageBase> {
  const { inp } = run;
  const base = await inp.images.resolve(ref, platform);
  run.baseImages.push(base.pinned);
  const layers = base.layers.map((l) => ({ ...l }));
  const config = structuredClone(base.config);
  config.rootfs = { type: 'layers', diff_ids: layers.map((l) => l.diffId) };
  config.config ??= {};
  if (!config.config.Env?.some((e) => e.startsWith('PATH=')))
    config.config.Env = [`PATH=${DEFAULT_PATH}`, ...(config.config.Env ?? [])];
  return {
    config,
    layers,
    history: [...(base.config.history ?? [])],
    chain: `image:${base.digest}:${formatPlatform(platform)}`,
    treeLayers: layers.map((l) => l.diffId),
    materialize: async () => {
      let got: LayerBlob[];
      if (inp.deps.sharing().linkBaseTrees) {
        const shared = await run.baseTree(base);
        await copyTree(shared.root, rootfs, true);
        got = shared.layers;
      } else
        got = await materializeBase(base, inp.images, rootfs, inp.deps, {
          logger: run.logger,
          transfers: inp.transfers,
        });
      // The builder shares these objects: give them their local paths for the push.
      got.forEach((l, i) => {
        if (layers[i]) layers[i]!.path = l.path;
      });
    },
  };
}
