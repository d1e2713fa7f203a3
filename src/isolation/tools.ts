/**
 * Host tools the isolation layer drives (util-linux, coreutils), found once by absolute path so that
 * the sandbox never depends on the PATH of the build or of the image.
 */
import { readFileSync } from 'node:fs';
import { runCommand, type CommandResult } from '../util/command.ts';
import { SYSTEM_DIRS } from '../util/find-tool.ts';

export { findTool } from '../util/find-tool.ts';

/** Quotes a word for POSIX sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export type ToolRun = CommandResult;

/** Runs a command to completion with the system PATH and a 15 s limit (probe and housekeeping only). */
export function runTool(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<ToolRun> {
  return runCommand(cmd, args, {
    env: opts.env ?? { PATH: SYSTEM_DIRS.join(':'), LC_ALL: 'C' },
    timeoutMs: opts.timeoutMs ?? 15000,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}

export { firstLine } from '../util/command.ts';

/**
 * True when this process runs in the initial user namespace (uid_map is the identity over the whole
 * range), false inside a user namespace such as the one kiln re-execs itself into.
 */
export function inInitialUserNamespace(): boolean {
  try {
    const map = readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    return map.length === 3 && map[0] === '0' && map[1] === '0' && map[2] === '4294967295';
  } catch {
    return true;
  }
}

/** Number of ids mapped into the current user namespace (4294967295 in the initial one). */
export function mappedIdCount(
  file: '/proc/self/uid_map' | '/proc/self/gid_map' = '/proc/self/uid_map',
): number {
  try {
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => Number(l.trim().split(/\s+/)[2] ?? 0))
      .reduce((a, b) => a + b, 0);
  } catch {
    return 0;
  }
}
