/**
 * Cache keys of steps: the state before the step (the chain), the canonical form of the typed,
 * expanded instruction (every field, so no flag can be left out), and what the step's module says
 * it observes (environment, files read). Secrets enter by id only: the instruction holds ids, never
 * values. Metadata steps are never stored but move the chain, so the steps after them key on them.
 */
import { createHash } from 'node:crypto';
import type { Instruction } from '../dockerfile/instructions.ts';
import { canonicalJson, envDigest } from '../cache/key.ts';
import type { StatIndex } from '../cache/sources-digest.ts';
import type { KeyParts } from '../cache/types.ts';
import type { StepModule } from './steps/module.ts';
import type { StepContext } from './steps/context.ts';

export interface KeyHelpers {
  index: StatIndex;
  platform: string;
  /** Final chain key of a stage named by a --from value, or undefined when it is not a stage. */
  stageKey(from: string): string | undefined;
  /** Pinned digest of an image named by a --from value. */
  imageDigest(ref: string): Promise<string>;
}

/** Where the instruction sits and how it was spelled do not change what it does. */
const NOT_SEMANTIC = new Set(['at', 'original']);

/** The instruction as the key sees it: every field but its position and display text. */
export function canonicalInstruction(ins: Instruction): string {
  return canonicalJson(ins, NOT_SEMANTIC);
}

/** The chain after a step that only changed the config. */
export function chainMetadata(chain: string, ins: Instruction): string {
  return createHash('sha256').update(chain).update('\0').update(canonicalInstruction(ins)).digest('hex');
}

/** The first chain key of a stage: what its base resolved to, then its FROM line. */
export function startChain(resolvedBase: string, from: Instruction): string {
  return chainMetadata(resolvedBase, from);
}

/** A --from value as a key input: the stage's final chain key, else the image's pinned digest. */
export async function fromDigest(from: string, h: KeyHelpers): Promise<string> {
  return h.stageKey(from) ?? `image:${await h.imageDigest(from)}`;
}

/** The config fields a COPY/ADD/WORKDIR can observe (relative destinations; owner of a new dir). */
export function configEnv(ctx: StepContext, h: KeyHelpers, withUser: boolean): string {
  const cfg = ctx.builder.config.config ?? {};
  return envDigest([], {
    workdir: cfg.WorkingDir ?? '',
    user: withUser ? (cfg.User ?? '') : '',
    platform: h.platform,
  });
}

export async function stepKeyParts<I extends Instruction>(
  mod: StepModule<I>,
  ins: I,
  ctx: StepContext,
  chain: string,
  h: KeyHelpers,
): Promise<KeyParts | null> {
  if (mod.cache !== 'layer' || !mod.keyInputs) return null;
  const inputs = await mod.keyInputs(ins, ctx, h);
  if (!inputs) return null;
  return { parent: chain, instruction: canonicalInstruction(ins), ...inputs };
}
