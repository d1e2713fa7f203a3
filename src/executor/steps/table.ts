/**
 * The step table: every instruction kind to the module that implements it. Typed as a StepTable,
 * so a new instruction kind does not compile until it has a module here.
 */
import type { Instruction } from '../../dockerfile/instructions.ts';
import {
  cmdModule,
  entrypointModule,
  envModule,
  exposeModule,
  healthcheckModule,
  labelModule,
  maintainerModule,
  onbuildModule,
  shellModule,
  stopsignalModule,
  userModule,
  volumeModule,
} from './config-steps.ts';
import { copyModule } from './copy-step.ts';
import type { StepModule, StepTable } from './module.ts';
import { runModule } from './run-step.ts';
import { argModule, fromModule } from './scope-steps.ts';
import { workdirModule } from './workdir-step.ts';

export const STEPS: StepTable = {
  from: fromModule,
  arg: argModule,
  run: runModule,
  copy: copyModule,
  add: copyModule,
  workdir: workdirModule,
  env: envModule,
  label: labelModule,
  expose: exposeModule,
  volume: volumeModule,
  user: userModule,
  stopsignal: stopsignalModule,
  maintainer: maintainerModule,
  cmd: cmdModule,
  entrypoint: entrypointModule,
  shell: shellModule,
  healthcheck: healthcheckModule,
  onbuild: onbuildModule,
};

/** The module of `ins`, typed for it. */
export function stepFor<I extends Instruction>(ins: I): StepModule<I> {
  // TypeScript cannot correlate STEPS[ins.kind] with I; the StepTable type guarantees the match.
  return STEPS[ins.kind] as unknown as StepModule<I>;
}
