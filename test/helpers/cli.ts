/**
 * The kiln CLI as integration tests run it: from src through tsx, in the repository, with the test
 * runner's own variables (and an inherited SOURCE_DATE_EPOCH, which would clamp every build) removed.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const REPO = new URL('../..', import.meta.url).pathname;
const MAIN = join(REPO, 'src/cli/main.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /**
   * Run as this (unprivileged) user through runuser, which resets the environment: `env` is then
   * passed on the command line with env(1).
   */
  user?: string;
}

/** `env` entries are added to the child's environment; an undefined value removes the variable. */
export function kiln(
  args: string[],
  env: Record<string, string | undefined> = {},
  opts: CliOptions = {},
): Promise<CliResult> {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.NODE_OPTIONS;
  delete e.NODE_TEST_CONTEXT;
  delete e.SOURCE_DATE_EPOCH;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete e[k];
    else e[k] = v;
  }
  const node = [process.execPath, '--import', 'tsx', MAIN, ...args];
  const passed = Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  const [cmd, ...argv] = opts.user ? ['runuser', '-u', opts.user, '--', 'env', ...passed, ...node] : node;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, argv, {
      cwd: REPO,
      env: e,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
