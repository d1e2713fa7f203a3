/**
 * Runs one RUN command in a prepared root directory, in the rung the probe chose:
 * - rootless / chroot: namespaced-run.ts (the command line is built by namespaced-script.ts);
 * - plain: plain-run.ts.
 * What both share is prepared here: the working directory, the generated /etc files, the resolved
 * mount targets, and the stubs (root-stubs.ts) that are removed after the run.
 */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { resolveInRoot } from '../fs/rootpath.ts';
import { KilnError } from '../util/errors.ts';
import { writeEtcFiles } from './etc-files.ts';
import { runNamespaced } from './namespaced-run.ts';
import { runPlain } from './plain-run.ts';
import { Stubs, exists, isDir } from './root-stubs.ts';
import type { ResolvedMount } from './root-stubs.ts';
import { prepareProot } from './plain-proot.ts';
import type { PlainProc, ProotAssets } from './plain-proot.ts';
import { requireRunTools } from './run-tools.ts';
import type { RunTools } from './run-tools.ts';
import type { Rung, RunResult, RunSpec, Sandbox } from './types.ts';

export const DEFAULT_HOSTNAME = 'kiln';

export interface SandboxOptions {
  /** Scratch directory for per-run files (generated hosts/resolv.conf/hostname). */
  workDir: string;
  /** Output sink used when the RunSpec has no onStdout/onStderr. */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  /** Non-fatal notes (e.g. network none is not possible in the plain rung). */
  onWarning?: (message: string) => void;
  /** Plain rung: how RUN gets /proc (the probe's choice; default none, the bare chroot). */
  plainProc?: PlainProc;
  /**
   * Namespaced rungs: leave the UTS namespace's host name as inherited (the probe found sethostname
   * denied, e.g. podman's seccomp profile without CAP_SYS_ADMIN); /etc/hostname still shows the step's.
   */
  keepUtsName?: boolean;
}

export function createSandbox(rung: Rung, opts: SandboxOptions): Sandbox {
  const tools = requireRunTools(rung);
  let assets: Promise<ProotAssets> | undefined;
  const proot =
    rung === 'plain' && opts.plainProc === 'proot'
      ? () => (assets ??= prepareProot(posix.join(opts.workDir, 'proot'), tools.perl))
      : undefined;
  return {
    rung,
    run: (spec) => runOnce(rung, tools, opts, spec, proot),
  };
}

/** Whether this process may not call setgroups(2) (a user namespace whose map was written unprivileged). */
function setgroupsDenied(): boolean {
  try {
    return readFileSync('/proc/self/setgroups', 'utf8').trim() === 'deny';
  } catch {
    return false;
  }
}

async function resolveMounts(root: string, spec: RunSpec): Promise<ResolvedMount[]> {
  const mounts: ResolvedMount[] = [];
  for (const m of spec.mounts) {
    const host = await resolveInRoot(root, m.target);
    if (host === root) {
      throw new KilnError(
        'isolation',
        'MOUNT_OVER_ROOT',
        `cannot mount over the root directory (${m.target})`,
      );
    }
    let sourceIsDir = true;
    if (m.type === 'bind') {
      try {
        sourceIsDir = (await stat(m.source)).isDirectory();
      } catch (e) {
        throw new KilnError('isolation', 'MOUNT_SOURCE', `mount source ${m.source} does not exist`, {
          cause: e,
        });
      }
    }
    mounts.push({ spec: m, host, sourceIsDir });
  }
  return mounts;
}

async function runOnce(
  rung: Rung,
  tools: RunTools,
  opts: SandboxOptions,
  spec: RunSpec,
  proot?: () => Promise<ProotAssets>,
): Promise<RunResult> {
  if (spec.argv.length === 0) {
    throw new KilnError('run', 'EMPTY_COMMAND', 'RUN has no command');
  }
  const root = posix.resolve(spec.root);
  if (!(await isDir(root))) {
    throw new KilnError('isolation', 'ROOT_MISSING', `sandbox root ${root} is not a directory`);
  }
  const hostname = spec.hostname || DEFAULT_HOSTNAME;
  // Working directory: created if missing, as Docker does (it stays: it is not a stub).
  const hostCwd = await resolveInRoot(root, spec.cwd || '/');
  if (!(await exists(hostCwd))) await mkdir(hostCwd, { recursive: true, mode: 0o755 });

  await mkdir(opts.workDir, { recursive: true });
  const tmp = await mkdtemp(posix.join(opts.workDir, 'run-'));
  const stubs = new Stubs();
  try {
    const etc = await writeEtcFiles(tmp, spec, hostname);
    const etcMounts: ResolvedMount[] = [];
    for (const [target, source] of [
      ['/etc/hosts', etc.hosts],
      ['/etc/resolv.conf', etc.resolv],
      ['/etc/hostname', etc.hostname],
    ] as const) {
      const host = await resolveInRoot(root, target);
      etcMounts.push({ spec: { type: 'bind', source, target, readonly: false }, host, sourceIsDir: false });
    }
    const mounts = await resolveMounts(root, spec);
    const ctx = {
      tools,
      opts,
      spec,
      root,
      hostCwd,
      hostname,
      tmp,
      stubs,
      etcMounts,
      mounts,
      setgroupsDenied: setgroupsDenied(),
      proot,
      // The kiln work dir: the sandbox dir is <work dir>/<build dir>/sandbox.
      shareTop: posix.dirname(posix.dirname(posix.resolve(opts.workDir))),
    };
    return rung === 'plain' ? await runPlain(ctx) : await runNamespaced(ctx);
  } finally {
    await stubs.remove();
    await rm(tmp, { recursive: true, force: true });
  }
}
