/** Expansion of one instruction in the stage's live scope (base image ENV included). */
import type { Instruction } from '../../dockerfile/instructions.ts';
import { expandInstruction, makeExpander } from '../../plan/expand-instruction.ts';
import type { StepContext } from './context.ts';

/** The rules of what Docker expands live in plan/expand-instruction.ts, shared with the plan view. */
export function expandInScope<I extends Instruction>(ins: I, ctx: StepContext): I {
  const x = makeExpander(ctx.scope.lookup, ctx.escape, ins.at);
  // expandInstruction returns the variant it was given (a copy with words expanded).
  return expandInstruction(ins, x) as I;
}

/** For instructions Docker does not expand (RUN's command, CMD, ...: the shell does it). */
export function keepAsWritten<I extends Instruction>(ins: I): I {
  return ins;
}
