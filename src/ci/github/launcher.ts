/**
 * How the action starts the kiln CLI. GitHub-hosted Ubuntu 24.04 runners restrict unprivileged user
 * namespaces with AppArmor, and the action runs as the `runner` user, so no rung works there as is;
 * those runners do allow passwordless sudo, which gives the chroot rung. The decision is made by
 * asking the CLI itself (`kiln probe`), so it follows the same probe as the build.
 */
import * as exec from '@actions/exec';

export interface Launcher {
  /** Command and leading arguments; the CLI path and its arguments follow. */
  argv: string[];
  /** One line for the log, when the launcher is not the plain one. */
  note?: string;
}

export interface LaunchFacts {
  euid: number;
  /** Exit code of `kiln probe` as this user (0: some rung works, 6: none). */
  probeExit: number;
  /** Whether `sudo -n true` succeeds. */
  sudoWorks: boolean;
  isolation: string;
}

export function chooseLauncher(node: string, f: LaunchFacts): Launcher {
  if (f.euid === 0 || f.probeExit === 0) return { argv: [node] };
  if (
    f.sudoWorks &&
    (f.isolation === 'auto' || f.isolation === 'chroot' || f.isolation === 'plain' || f.isolation === '')
  ) {
    return {
      argv: ['sudo', '-n', '-E', node],
      note: 'kiln: no sandbox works as this user here (user namespaces are restricted); using passwordless sudo for the chroot rung',
    };
  }
  return { argv: [node] };
}

/** The environment as @actions/exec takes it (no undefined values). */
export function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** Exit code of a quiet command; 127 when it cannot be started. */
async function exitOf(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  try {
    return await exec.exec(cmd, args, { env: stringEnv(env), silent: true, ignoreReturnCode: true });
  } catch {
    return 127;
  }
}

export async function launchFacts(
  cli: string,
  isolation: string,
  env: NodeJS.ProcessEnv,
): Promise<LaunchFacts> {
  const euid = process.geteuid?.() ?? 0;
  if (euid === 0) return { euid, probeExit: 0, sudoWorks: false, isolation };
  const probeExit = await exitOf(
    process.execPath,
    [cli, 'probe', ...(isolation ? ['--isolation', isolation] : [])],
    env,
  );
  const sudoWorks = probeExit !== 0 && (await exitOf('sudo', ['-n', 'true'], env)) === 0;
  return { euid, probeExit, sudoWorks, isolation };
}
