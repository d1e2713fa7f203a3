/**
 * KILN_REGISTRY_PASSWORD_FILE: the registry password in a file rather than in kiln's environment
 * (a process's initial environment stays readable in /proc/<pid>/environ for its whole life, even
 * after unsetenv). The CI adapters write it 0600 in a private directory; kiln reads it once, unsets
 * the variable and removes the file, which is meant for that one build.
 */
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KilnError } from '../util/errors.ts';

export const PASSWORD_FILE_ENV = 'KILN_REGISTRY_PASSWORD_FILE';

/** The password from KILN_REGISTRY_PASSWORD_FILE (then unset, the file removed); undefined without it. */
export function takePasswordFile(env: NodeJS.ProcessEnv): string | undefined {
  const path = env[PASSWORD_FILE_ENV];
  if (path === undefined || path === '') return undefined;
  delete env[PASSWORD_FILE_ENV];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KilnError('usage', 'BAD_CREDENTIALS', `cannot read ${PASSWORD_FILE_ENV} (${path})`, {
      hint: 'the file is read once and removed: write it again for each build',
      cause: e,
    });
  }
  try {
    unlinkSync(path);
  } catch {
    // A read-only mount: the variable is gone all the same.
  }
  return text.replace(/\r?\n$/, '');
}

/** A fresh 0600 password file for a child kiln (the user-namespace re-exec); `remove` cleans up. */
export function passwordFileForChild(password: string): { env: Record<string, string>; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cred-'));
  const file = join(dir, 'password');
  writeFileSync(file, password, { mode: 0o600 });
  return {
    env: { [PASSWORD_FILE_ENV]: file },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
