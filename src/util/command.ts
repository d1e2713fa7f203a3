/**
 * The one way kiln runs a short host command and waits for it (cp, getfattr, git, decompressors,
 * probe tools). It never rejects: a command that cannot start is `missing` with code 127, so each
 * caller decides whether that is an error, a fallback or a probe result, and says so in its own words.
 * Long-running children whose output is streamed (RUN steps, the CLI under the adapters) do not use it.
 */
import { spawn } from 'node:child_process';

export interface CommandOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is closed after it; without it stdin is /dev/null. */
  input?: string | Buffer;
  /** SIGKILL after this long; the result then has `signal: 'SIGKILL'`. */
  timeoutMs?: number;
  /** `ignore` for commands whose stdout is large and unwanted. */
  stdout?: 'capture' | 'ignore';
  /**
   * Start the command in its own process group, so a timeout kills it and everything it started
   * (which could otherwise hold the pipes open and keep the result from ever arriving).
   */
  ownProcessGroup?: boolean;
  /** Descriptors of this process handed to the command as its 3, 4, ... (for /proc/self/fd paths). */
  fds?: number[];
}

export interface CommandResult {
  /** Exit code; 127 when the command could not be started, 128 when it died of a signal. */
  code: number;
  signal?: NodeJS.Signals;
  /** The command does not exist or could not be executed (ENOENT, EACCES). */
  missing: boolean;
  /** Killed because `timeoutMs` passed; stdout and stderr are then empty. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export function runCommand(cmd: string, args: string[], opts: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    const done = (r: Omit<CommandResult, 'stdout' | 'stderr' | 'timedOut'>, extraErr = ''): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      resolve({ ...r, timedOut: false, stdout, stderr: Buffer.concat(err).toString('utf8') + extraErr });
    };
    let timer: NodeJS.Timeout | undefined;
    let child;
    try {
      child = spawn(cmd, args, {
        cwd: opts.cwd,
        env: opts.env,
        stdio: [
          opts.input === undefined ? 'ignore' : 'pipe',
          opts.stdout === 'ignore' ? 'ignore' : 'pipe',
          'pipe',
          ...(opts.fds ?? []),
        ],
        detached: opts.ownProcessGroup === true,
      });
    } catch (e) {
      done({ code: 127, missing: true }, e instanceof Error ? e.message : String(e));
      return;
    }
    if (opts.timeoutMs !== undefined)
      timer = setTimeout(() => {
        try {
          if (opts.ownProcessGroup && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          else child.kill('SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
        child.stdout?.destroy();
        child.stderr?.destroy();
        settled = true;
        resolve({ code: 128, signal: 'SIGKILL', missing: false, timedOut: true, stdout: '', stderr: '' });
      }, opts.timeoutMs);
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => undefined); // the command may exit without reading its input
      child.stdin?.end(opts.input);
    }
    child.on('error', (e: NodeJS.ErrnoException) =>
      done({ code: 127, missing: true }, `${cmd}: ${e.message}`),
    );
    child.on('close', (code, signal) =>
      done({ code: code ?? 128, missing: false, ...(signal ? { signal } : {}) }),
    );
  });
}

/** The first non-empty line of a command's error output (or the fallback), for one-line messages. */
export function firstLine(s: string, fallback = ''): string {
  return (
    s
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? fallback
  );
}
