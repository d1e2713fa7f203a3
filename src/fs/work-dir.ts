/**
 * The per-user scratch directory. The default is `$XDG_RUNTIME_DIR/kiln` (a directory only its user
 * can enter) or `$TMPDIR/kiln-<uid>` (`/tmp/kiln-<uid>`): a shared `/tmp/kiln` breaks the second user of a machine (root
 * creates it, everyone else gets EACCES) and lets users see each other's build trees. It is created
 * 0700; one that exists but belongs to someone else, or cannot be written, is an environment error
 * with a hint, never an internal one.
 */
import { accessSync, constants, lstatSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../util/errors.ts';

/**
 * The uid this process has outside any user namespace: kiln re-executes itself as root of a user
 * namespace, where the default must still name the invoking user's directory.
 */
export function hostUid(): number {
  const uid = process.getuid?.() ?? 0;
  try {
    for (const line of readFileSync('/proc/self/uid_map', 'utf8').trim().split('\n')) {
      const [inside, outside, count] = line.trim().split(/\s+/).map(Number);
      if (inside === undefined || outside === undefined || count === undefined) continue;
      if (uid >= inside && uid < inside + count) return outside + (uid - inside);
    }
  } catch {
    // no /proc: the uid as seen here
  }
  return uid;
}

function usableRuntimeDir(dir: string | undefined): dir is string {
  if (!dir || !dir.startsWith('/')) return false;
  try {
    const st = statSync(dir);
    accessSync(dir, constants.W_OK | constants.X_OK);
    return st.isDirectory() && st.uid === (process.geteuid?.() ?? 0);
  } catch {
    return false;
  }
}

/**
 * `$XDG_RUNTIME_DIR/kiln` when that directory is this user's, else `kiln-<uid>` in the temporary
 * directory (`$TMPDIR`, normally /tmp).
 */
export function defaultWorkDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (usableRuntimeDir(xdg)) return join(xdg, 'kiln');
  const tmp = env.TMPDIR && env.TMPDIR.startsWith('/') ? env.TMPDIR : '/tmp';
  return join(tmp, `kiln-${hostUid()}`);
}

function errno(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

const HINT = 'pass --work-dir <a directory this user owns> (e.g. on the job volume), or remove the directory';

/**
 * Makes `dir` exist (mode 0700 when kiln creates it) and checks this user may work in it. The default
 * directory must also be owned by this user and not a symlink: another user could have made it first
 * in /tmp to read or plant build trees.
 */
export async function ensureWorkDir(dir: string, isDefault = dir === defaultWorkDir()): Promise<void> {
  const euid = process.geteuid?.() ?? 0;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new KilnError('fs', 'WORK_DIR', `cannot create the work directory ${dir} (${errno(e)})`, {
      hint: HINT,
      cause: e,
    });
  }
  const st = lstatSync(dir);
  if (isDefault) {
    if (!st.isDirectory() || st.uid !== euid) {
      const what = st.isSymbolicLink() ? 'is a symlink' : `belongs to uid ${st.uid}, not to uid ${euid}`;
      throw new KilnError('fs', 'WORK_DIR_FOREIGN', `the work directory ${dir} ${what}`, { hint: HINT });
    }
    // Enter-only bits (0711) are what the plain rung's PRoot mode gives its tracees; no one may list.
    if ((st.mode & 0o066) !== 0) await chmod(dir, 0o700);
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new KilnError('fs', 'WORK_DIR', `the work directory ${dir} is not writable (${errno(e)})`, {
      hint: HINT,
      cause: e,
    });
  }
}
