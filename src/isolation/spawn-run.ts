/**
 * Starts the sandbox's outermost process, streams its output, keeps the tail for error messages and
 * turns its end into a RunResult (or an isolation error when the sandbox itself could not be set up).
 */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { KilnError } from '../util/errors.ts';
import type { RunResult, RunSpec } from './types.ts';

const TAIL_BYTES = 4096;
/** Exit status reserved for "the sandbox could not be set up" (reported as an isolation error). */
export const SETUP_FAILED = 125;

export interface OutputSinks {
  /** Output sink used when the RunSpec has no onStdout/onStderr. */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  /** Non-fatal notes: a process the step left running (then killed). */
  onWarning?: (message: string) => void;
}

const LINGERING = 'kiln lingering: ';

/** Splits what the init wrote on fd 3 into set-up errors and lingering-process warnings. */
export function parseInitReport(text: string): { errors: string[]; lingering: string[] } {
  const errors: string[] = [];
  const lingering: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(LINGERING)) lingering.push(line.slice(LINGERING.length).trim());
    else if (line.trim() !== '') errors.push(line.trim());
  }
  return { errors, lingering };
}

/** The warning for processes a step left behind: pid, name and command line of each. */
export function lingeringWarning(procs: string[]): string {
  const shown = procs.slice(0, 5).map((p) => {
    const [pid, comm, ...cmd] = p.split(' ');
    return `${comm} (pid ${pid}${cmd.length ? `: ${cmd.join(' ').slice(0, 120)}` : ''})`;
  });
  const more = procs.length > 5 ? ` and ${procs.length - 5} more` : '';
  return `RUN left ${procs.length === 1 ? 'a process' : `${procs.length} processes`} running after its command ended: ${shown.join(', ')}${more}; killed (a build step's processes end with the step, as in Docker)`;
}

/** Tail buffer of combined output: the last TAIL_BYTES bytes. */
class Tail {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.buf.length > TAIL_BYTES) this.buf = this.buf.subarray(this.buf.length - TAIL_BYTES);
  }
  lines(): string[] {
    const lines = this.buf.toString('utf8').split('\n');
    while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
    return lines;
  }
}

/**
 * Runs `cmd args` with a clean environment; fd 3 carries setup errors. `ownGroup` starts it in its
 * own process group so that a kill reaches every process of the step.
 */
export function spawnAndWait(
  cmd: string,
  args: string[],
  spec: RunSpec,
  opts: OutputSinks,
  ownGroup: boolean,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const tail = new Tail();
    let setupErr = '';
    let child;
    try {
      child = spawn(cmd, args, {
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        detached: ownGroup,
      });
    } catch (e) {
      reject(new KilnError('isolation', 'SANDBOX_START', `cannot start ${cmd}`, { cause: e }));
      return;
    }
    let killedBy: string | undefined;
    let hardKill: NodeJS.Timeout | undefined;
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const kill = (why: string) => {
      killedBy ??= why;
      try {
        // The plain rung's init kills the whole tree on SIGTERM (orphans included, whatever their
        // session); the group kill follows in case it cannot.
        if (ownGroup && child.pid) {
          child.kill('SIGTERM');
          hardKill ??= setTimeout(killGroup, 2000);
        } else child.kill('SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = spec.timeoutMs ? setTimeout(() => kill('timeout'), spec.timeoutMs) : undefined;
    const onAbort = () => kill('aborted');
    if (spec.signal?.aborted) onAbort();
    spec.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout?.on('data', (d: Buffer) => {
      tail.push(d);
      if (spec.onStdout) spec.onStdout(d);
      else opts.onOutput?.(d, 'stdout');
    });
    child.stderr?.on('data', (d: Buffer) => {
      tail.push(d);
      if (spec.onStderr) spec.onStderr(d);
      else opts.onOutput?.(d, 'stderr');
    });
    const fd3 = child.stdio[3];
    if (fd3 && 'on' in fd3) fd3.on('data', (d: Buffer) => (setupErr += d.toString()));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
      reject(new KilnError('isolation', 'SANDBOX_START', `cannot start ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (hardKill) clearTimeout(hardKill);
      spec.signal?.removeEventListener('abort', onAbort);
      const report = parseInitReport(setupErr);
      if (report.lingering.length > 0 && !killedBy) opts.onWarning?.(lingeringWarning(report.lingering));
      if (code === SETUP_FAILED && report.errors.length > 0) {
        reject(
          new KilnError('isolation', 'SANDBOX_SETUP', report.errors.join('; '), {
            hint: 'the sandbox could not be prepared; try another --isolation rung',
          }),
        );
        return;
      }
      if (signal) {
        const num = (osConstants.signals as Record<string, number>)[signal] ?? 0;
        resolve({
          exitCode: 128 + num,
          signal: killedBy ? `${signal} (${killedBy})` : signal,
          tail: tail.lines(),
        });
        return;
      }
      resolve({ exitCode: code ?? 1, tail: tail.lines() });
    });
  });
}
