/**
 * One step through the layer cache: its key from the step module's inputs, then either a hit (the
 * stored layer joins the image, applied to the tree lazily) or a miss (the step runs and its layer,
 * or the fact that it made none, is stored under the key).
 */
import type { Instruction } from '../dockerfile/instructions.ts';
import { explainMiss, hashParts } from '../cache/key.ts';
import type { CacheEntry, CacheHit, LayerCache } from '../cache/types.ts';
import type { LayerBlob } from '../image/types.ts';
import type { LazyRootfs } from './lazy-rootfs.ts';
import type { StageBuilder } from './stage-builder.ts';
import { stepKeyParts, type KeyHelpers } from './step-cache.ts';
import type { StepContext } from './steps/context.ts';
import type { StepModule } from './steps/module.ts';

export interface CachedRun<I extends Instruction> {
  store: LayerCache;
  helpers: KeyHelpers;
  mod: StepModule<I>;
  ins: I;
  ctx: StepContext;
  tree: LazyRootfs;
  /** Chain key before the step. */
  chain: string;
  /** Position of the step across builds, to say why its key changed. */
  slot: string;
  /** `[stage] INSTRUCTION` for the log. */
  logText: string;
  /** The step's display text, history's fallback. */
  text: string;
  /** Told of a hit whose blob is still being checked: the build waits for it before it ends. */
  verifying(check: Promise<void>): void;
}

export interface StepOutcome {
  cache: 'hit' | 'miss' | 'none';
  cacheReason?: string;
  /** Chain key after the step. */
  chain: string;
}

/** The step's outcome through the cache, or null when it cannot be keyed (then it runs uncached). */
export async function runCached<I extends Instruction>(c: CachedRun<I>): Promise<StepOutcome | null> {
  const parts = await stepKeyParts(c.mod, c.ins, c.ctx, c.chain, c.helpers);
  if (!parts) return null;
  const key = hashParts(parts);
  const hit = await c.store.get(key);
  const previous = hit ? null : await c.store.previousParts(c.slot);
  await c.store.rememberParts(c.slot, parts);
  if (hit) {
    await restoreHit(c, hit);
    c.ctx.logger.info(`${c.logText} (cached, ${hit.from})`);
    return { cache: 'hit', chain: key };
  }
  const reason = explainMiss(previous, parts);
  c.ctx.logger.info(`${c.logText} (cache miss: ${reason})`);
  const early = c.tree.isReal ? undefined : c.mod.prepare?.(c.ins, c.ctx);
  try {
    await c.tree.ensure();
  } finally {
    await (
      await early
    )?.();
  }
  const before = c.ctx.builder.layers.length;
  await c.mod.run(c.ins, c.ctx);
  // Taken now: the layer may still be being written (it is filled in place), and later steps add
  // history. The entry is stored once the layer is written, before anything settles on it.
  const made = madeLayer(c.ctx.builder, before);
  const createdBy = c.ctx.builder.history.at(-1)?.created_by ?? c.text;
  c.ctx.builder.afterLayers(() => c.store.put(...entryFor(made, key, createdBy)));
  return { cache: 'miss', cacheReason: reason, chain: key };
}

async function restoreHit<I extends Instruction>(c: CachedRun<I>, hit: CacheHit): Promise<void> {
  c.ctx.builder.applyCached(hit.entry, hit.blobPath);
  // Once the tree is real (an earlier step ran), a cached layer must land in it now.
  if (hit.verified) c.verifying(hit.verified);
  if (hit.blobPath) await c.tree.addLayer(hit.blobPath, hit.entry.layer?.diffId, hit.verified);
  c.mod.restore?.(c.ins, c.ctx);
}

/** The layer a step that just ran added, if any. */
function madeLayer(b: StageBuilder, layersBefore: number): LayerBlob | undefined {
  return b.layers.length > layersBefore ? b.layers[b.layers.length - 1] : undefined;
}

/** The cache entry of a step that ran: its new layer (written by now), or an empty-layer record. */
function entryFor(
  made: LayerBlob | undefined,
  key: string,
  createdBy: string,
): [CacheEntry, string | undefined] {
  if (!made) return [{ version: 1, key, createdBy, emptyLayer: true }, undefined];
  const entry: CacheEntry = {
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
  };
  return [entry, made.path];
}
