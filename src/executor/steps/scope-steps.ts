/**
 * ARG, which only changes the stage's scope (BuildKit records no history for it), and FROM, which
 * starts a stage and is therefore never a step inside one (see ../stage-base.ts).
 */
import type { ArgInstruction, FromInstruction } from '../../dockerfile/instructions.ts';
import { makeExpander } from '../../plan/expand-instruction.ts';
import { KilnError } from '../../util/errors.ts';
import { expandInScope } from './expand.ts';
import type { StepModule } from './module.ts';

export const argModule: StepModule<ArgInstruction> = {
  // Declaring the arg is the whole step: defaults are expanded in declaration order.
  expand: (ins, ctx) => {
    const x = makeExpander(ctx.scope.lookup, ctx.escape, ins.at);
    for (const a of ins.args)
      // BuildKit's ArgCommand.Expand expands the name too (`ARG ${src}=...`).
      ctx.scope.declareArg(x.word(a.name), a.default === undefined ? undefined : x.word(a.default));
    return null;
  },
  touchesFilesystem: false,
  cache: 'scope',
  run: async () => undefined,
};

export const fromModule: StepModule<FromInstruction> = {
  expand: expandInScope,
  touchesFilesystem: false,
  cache: 'config',
  run: async (ins) => {
    throw new KilnError('internal', 'UNEXPECTED_FROM', 'FROM inside a stage', { position: ins.at });
  },
};
