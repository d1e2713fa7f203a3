/**
 * What every step sees: the stage being built, its ARG/ENV scope, the build context and a way to
 * reach other stages' and images' filesystems. One StepContext per stage.
 */
import type { StageBuilder } from '../stage-builder.ts';
import type { StageScope } from '../../plan/scope.ts';
import type { EscapeToken } from '../../dockerfile/words.ts';
import type { ContextSource } from '../../context/sources.ts';
import type { BuildOptions } from '../../options.ts';
import type { Logger } from '../../log/logger.ts';
import type { FilePool } from '../../fs/file-pool.ts';

export interface SourceTree {
  root: string;
  /** Files from other stages and images keep their owners; context files become 0:0. */
  preserveOwnership: boolean;
}

export interface StepContext {
  builder: StageBuilder;
  scope: StageScope;
  escape: EscapeToken;
  context: ContextSource;
  /** Tree for a `--from` value (stage name, index or image); the context when undefined. */
  sourceTree(from: string | undefined): Promise<SourceTree>;
  opts: BuildOptions;
  tmpDir: string;
  cacheDir: string;
  logger: Logger;
  /** Files earlier COPYs made, kept in the tree store (overlay engine with a cache dir only). */
  filePool?: () => FilePool | undefined;
  /** The same, waiting until it is known (isolation chosen): for work done before the tree is real. */
  filePoolReady?: () => Promise<FilePool | undefined>;
  /** Output of RUN steps goes here (the CLI streams it to stderr). */
  onOutput?: (chunk: Buffer) => void;
}
