/**
 * Progress a person can follow: steps numbered as BuildKit numbers them (`[stage 2/3] [4/9] RUN …`,
 * the stage among those the target needs, the step within its stage, FROM first) and one line when
 * each ends with its duration. In JSON logs the end line carries the numbers as fields, for tools.
 */
import type { StepPosition, StepProgress } from '../executor/build-run.ts';
import type { Logger } from '../log/logger.ts';
import { humanDuration } from './summary.ts';

export const stepPrefix = (p: StepPosition): string =>
  `[stage ${p.stageNumber}/${p.stageCount}] [${p.step}/${p.stepCount}]`;

export function stepProgress(logger: Logger): StepProgress {
  return {
    prefix: stepPrefix,
    done: (p, r) => {
      const first = r.instruction.split('\n')[0]!;
      const text = first.length > 60 ? `${first.slice(0, 60)}…` : first;
      const how = r.cache === 'hit' ? ', cached' : '';
      // The instruction goes last, so the line is never read as the step's start line.
      logger.log('info', `${stepPrefix(p)} done in ${humanDuration(r.durationMs)}${how}: ${text}`, {
        event: 'step-done',
        stage: p.stage,
        stageNumber: p.stageNumber,
        stageCount: p.stageCount,
        step: p.step,
        stepCount: p.stepCount,
        durationMs: r.durationMs,
        cache: r.cache,
      });
    },
  };
}
