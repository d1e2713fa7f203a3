/**
 * Progress a person can follow: steps numbered as BuildKit numbers them (`[stage 2/3] [4/9] RUN …`,
 * the stage among those the target needs, the step within its stage, FROM first) and one line when
 * each ends with its duration. In JSON logs the end line carries the numbers as fields, for tools.
 * And the bytes of pulls, pushes and base extractions: where they are shown and how.
 */
import type { StepPosition, StepProgress } from '../executor/build-run.ts';
import type { Logger } from '../log/logger.ts';
import { StatusLine } from '../log/status-line.ts';
import { TransferBoard } from '../log/transfer-board.ts';
import type { BoardMode } from '../log/transfer-board.ts';
import type { CliSettings } from './to-options.ts';
import { humanDuration } from './summary.ts';

export const stepPrefix = (p: StepPosition): string =>
  `[stage ${p.stageNumber}/${p.stageCount}${p.platform ? ` ${p.platform}` : ''}] [${p.step}/${p.stepCount}]`;

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
        ...(p.platform ? { platform: p.platform } : {}),
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

/**
 * How transfers are shown: JSON events in JSON logs; a live line on a terminal (`--progress auto`
 * or `tty`); plain periodic lines otherwise (`--progress plain`, CI logs, pipes, TERM=dumb), which
 * the log level hides like any info line.
 */
export function transferMode(
  settings: Pick<CliSettings, 'log' | 'progress'>,
  stream: { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): { mode: BoardMode; note?: string } {
  if (settings.log.format === 'json') return { mode: 'json' };
  // Plain lines are info messages: `-v warn` and quieter show no progress, and no live line either.
  const quiet = !['trace', 'debug', 'info'].includes(settings.log.level);
  if (settings.progress.mode === 'plain' || quiet) return { mode: 'plain' };
  const terminal = stream.isTTY === true && env.TERM !== 'dumb';
  if (settings.progress.mode === 'tty' && !terminal)
    return {
      mode: 'plain',
      note: '--progress tty: stderr is not a terminal (or TERM=dumb), so transfers are shown as plain lines',
    };
  return { mode: terminal ? 'tty' : 'plain' };
}

/** The build's output: a status line on a terminal (log lines and RUN output written above it). */
export interface BuildOutput {
  mode: BoardMode;
  note?: string;
  status?: StatusLine;
  /** Every other write to stderr goes through here. */
  write(chunk: string | Uint8Array): void;
}

export function buildOutput(
  settings: Pick<CliSettings, 'log' | 'progress'>,
  stderr: NodeJS.WriteStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): BuildOutput {
  const m = transferMode(settings, stderr, env);
  if (m.mode !== 'tty') return { ...m, write: (c) => void stderr.write(c) };
  const status = new StatusLine(stderr);
  return { ...m, status, write: (c) => status.write(c) };
}

export function transferBoard(out: BuildOutput, logger: Logger, intervalMs: number): TransferBoard {
  return new TransferBoard({
    mode: out.mode,
    logger,
    intervalMs,
    ...(out.status ? { status: out.status } : {}),
  });
}
