/**
 * The one interface every instruction kind implements (Kaniko's pkg/commands): how it is expanded,
 * whether it touches the stage's filesystem, how it is cached, and how it runs. The table that maps
 * each kind to its module is steps/table.ts; the executor knows no instruction by name.
 */
import type { Instruction } from '../../dockerfile/instructions.ts';
import type { BuildOptions } from '../../options.ts';
import type { KeyHelpers } from '../step-cache.ts';
import type { StepContext } from './context.ts';

export type InstructionKind = Instruction['kind'];

/** The instruction type whose `kind` includes K (COPY and ADD share CopyInstruction). */
export type InstructionOf<K extends InstructionKind> = Instruction extends infer T
  ? T extends { kind: infer TK }
    ? K extends TK
      ? T
      : never
    : never
  : never;

/**
 * How a step takes part in the layer cache:
 * - `layer`: keyed on the chain, its canonical instruction and `keyInputs`; a hit restores its layer.
 * - `config`: changes only the config; never stored, but folded into the chain key of later steps.
 * - `scope`: changes only the ARG scope; nothing to key (a RUN that reads the arg keys its value).
 */
export type CacheMode = 'layer' | 'config' | 'scope';

/** What a `layer` step observes besides the state before it and its own instruction. */
export interface KeyInputs {
  /** Digest of the build args and config fields the step can see. */
  env: string;
  /** Digest of the files it reads ('' when none). */
  sources: string;
}

export interface StepModule<I extends Instruction> {
  /** Applies Docker's expansion in the stage's live scope; null when expansion was the whole step (ARG). */
  expand(ins: I, ctx: StepContext): I | null;
  /** Reads or writes the stage's filesystem, so its rootfs must be real first. */
  touchesFilesystem: boolean;
  cache: CacheMode;
  /** `layer` steps: whether the build's options allow caching this kind (--cache-run-layers, ...). */
  cacheAllowed?(opts: BuildOptions): boolean;
  /**
   * `layer` steps: the key inputs beyond chain and instruction, or null when the step cannot be
   * keyed before it runs (ADD of a URL without --checksum).
   */
  keyInputs?(ins: I, ctx: StepContext, h: KeyHelpers): Promise<KeyInputs | null>;
  run(ins: I, ctx: StepContext): Promise<void>;
  /**
   * Work a cache miss can start before the stage's tree is real, done while the tree is made. The
   * function it resolves with is called once the tree is there, before run; nothing here may fail
   * the step (it resolves undefined instead).
   */
  prepare?(ins: I, ctx: StepContext): Promise<(() => Promise<void>) | undefined>;
  /** On a cache hit, the config change the step would have made besides its layer (WORKDIR). */
  restore?(ins: I, ctx: StepContext): void;
}

export type StepTable = { [K in InstructionKind]: StepModule<InstructionOf<K>> };
