/**
 * What the runner-environment tests share: test users with and without a subordinate id range, the
 * kiln CLI run from src as another uid (runuser for a named user, setpriv for a uid with no passwd
 * entry), and the link groups of a pushed image's layers.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, type CliResult } from './cli.ts';

const execFileP = promisify(execFile);
const MAIN = join(REPO, 'src/cli/main.ts');

/** Creates `name` when missing and gives it exactly the subuid/subgid range `subids` (or none). */
export async function ensureUser(name: string, subids: string | undefined): Promise<number> {
  try {
    await execFileP('id', ['-u', name]);
  } catch {
    await execFileP('useradd', ['-M', '-s', '/bin/sh', name]);
  }
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(f) ? await readFile(f, 'utf8') : '';
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const mine = lines.filter((l) => l.split(':')[0] === name);
    if (subids === undefined) {
      if (mine.length > 0) await writeFile(f, lines.filter((l) => !mine.includes(l)).join('\n') + '\n');
    } else if (mine.length === 0) {
      await writeFile(f, [...lines, `${name}:${subids}`].join('\n') + '\n');
    }
  }
  return Number((await execFileP('id', ['-u', name])).stdout.trim());
}

export type RunAs = { user: string } | { uid: number } | undefined;

/**
 * Runs the CLI from src. `env` is the child's whole environment on top of PATH (the test runner's
 * variables would otherwise leak in); `as` picks the identity.
 */
export function kilnAs(args: string[], as: RunAs, env: Record<string, string> = {}): Promise<CliResult> {
  const node = [process.execPath, '--import', 'tsx', MAIN, ...args];
  const childEnv: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env };
  const prefix =
    as === undefined
      ? []
      : 'user' in as
        ? ['runuser', '-u', as.user, '--']
        : ['setpriv', `--reuid=${as.uid}`, `--regid=${as.uid}`, '--clear-groups', '--'];
  const argv = [...prefix, 'env', '-i', ...Object.entries(childEnv).map(([k, v]) => `${k}=${v}`), ...node];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
