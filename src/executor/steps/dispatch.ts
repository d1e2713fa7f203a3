/**
 * One instruction of a stage: expanded against the stage's live scope (base image ENV included),
 * then handed to the step that implements it. ARG only changes the scope.
 */
import type { Instruction } from '../../dockerfile/instructions.ts';
import { expandInstruction, makeExpander } from '../../plan/expand-instruction.ts';
import { KilnError } from '../../util/errors.ts';
import type { StepContext } from './context.ts';
import { copyStep } from './copy-step.ts';
import { metadataStep } from './metadata.ts';
import { runStep } from './run-step.ts';

/** Expands `raw` in the stage's scope; ARG is applied to the scope here and yields null. */
export function expandStep(raw: Instruction, ctx: StepContext): Instruction | null {
  const x = makeExpander(ctx.scope.lookup, ctx.escape, raw.at);
  if (raw.kind === 'arg') {
    for (const a of raw.args)
      ctx.scope.declareArg(a.name, a.default === undefined ? undefined : x.word(a.default));
    return null;
  }
  return expandInstruction(raw, x);
}

/** Instructions that read or write the stage's filesystem (the rest only change the config). */
export function touchesFilesystem(ins: Instruction): boolean {
  return ins.kind === 'run' || ins.kind === 'copy' || ins.kind === 'add' || ins.kind === 'workdir';
}

export async function dispatchExpanded(ins: Instruction, ctx: StepContext): Promise<void> {
  switch (ins.kind) {
    case 'run':
      return runStep(ins, ctx);
    case 'copy':
    case 'add':
      return copyStep(ins, ctx);
    case 'from':
      throw new KilnError('internal', 'UNEXPECTED_FROM', 'FROM inside a stage', { position: ins.at });
    default:
      if (await metadataStep(ins, ctx)) return;
      throw new KilnError('internal', 'UNHANDLED_INSTRUCTION', `no step for ${ins.kind}`, {
        position: ins.at,
      });
  }
}
