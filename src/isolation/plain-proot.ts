/**
 * PRoot mode of the plain rung: where mount(2) is denied (Docker's default seccomp profile) the host's
 * /proc, /dev/pts and /dev/ptmx are bound into the root by PRoot (Debian's `proot`, what udocker uses),
 * which traces the RUN with ptrace and rewrites its paths. The RUN is then not chrooted by the kernel:
 * what keeps it in the root is PRoot's path translation, guarded by the seccomp filter of
 * proot-filter.ts (calls PRoot cannot translate fail, PRoot cannot be signalled or attached) and by
 * PRoot being undumpable (an unreadable copy is exec'd). So it is used only where /proc/sys and
 * /proc/sysrq-trigger are read-only (as in every Docker/podman container), or, when they are
 * writable, inside a private mount namespace that makes them so; `KILN_PLAIN_PROC=none` keeps the
 * bare chroot (no /proc), which is also the fallback when PRoot cannot work here.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../util/errors.ts';
import { CAP } from './capabilities.ts';
import type { CapName } from './capabilities.ts';
import { prootFilterHex } from './proot-filter.ts';
import { PROOT_INNER_SCRIPT } from './run-init.ts';
import type { InitSyscalls } from './run-init.ts';
import { findTool, runTool } from './tools.ts';
import type { RunSpec } from './types.ts';

/** How a plain-rung RUN gets /proc: bound by PRoot, or none (bare chroot). */
export type PlainProc = 'proot' | 'none';
export const PLAIN_PROC_ENV = 'KILN_PLAIN_PROC';

/** Word in the PRoot command line the run init replaces with its status pipe's descriptor. */
export const STATUS_FD_WORD = '@kiln-status-fd@';
/**
 * Capabilities PRoot keeps and its tracees drop. SYS_PTRACE: a process that changed its uid is not
 * dumpable until it execs, and only a tracer with it may then write the exec's arguments (apt's gpgv
 * as _apt, su, setpriv). Both: PRoot's permitted set is then no subset of a tracee's, so the kernel
 * refuses a tracee ptrace, process_vm_writev and /proc/<pid>/mem on PRoot.
 */
export const TRACER_CAPS: readonly CapName[] = ['SYS_CHROOT', 'SYS_PTRACE'];
/** Where the host's Perl is bound inside the root. */
const INNER = '/.kiln-run';

export function plainProcWanted(): 'auto' | PlainProc {
  const v = process.env[PLAIN_PROC_ENV] || 'auto';
  if (v !== 'auto' && v !== 'proot' && v !== 'none') {
    throw new KilnError('usage', 'PLAIN_PROC', `${PLAIN_PROC_ENV}=${v}: unknown /proc mechanism`, {
      hint: `set ${PLAIN_PROC_ENV} to proot, none or auto`,
    });
  }
  return v;
}

function writable(path: string): boolean {
  try {
    closeSync(openSync(path, constants.O_WRONLY));
    return true;
  } catch {
    return false;
  }
}

/** /proc/sys or sysrq-trigger can be written here (a bare host as root, a privileged container). */
export function procWritable(): boolean {
  return writable('/proc/sys/kernel/core_pattern') || writable('/proc/sysrq-trigger');
}

function boundingHas(cap: number): boolean {
  try {
    const hex = /^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
    return ((BigInt('0x' + hex) >> BigInt(cap)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** Why PRoot mode cannot be used here (cheap checks), or undefined. */
export function prootUnavailable(): string | undefined {
  if (!findTool('proot')) return "'proot' is not installed (apt-get install proot)";
  if (!prootFilterHex()) return `PRoot mode has a seccomp filter for x86_64 only, not ${process.arch}`;
  if (!boundingHas(CAP.SYS_PTRACE)) {
    return "PRoot needs CAP_SYS_PTRACE to follow a RUN's processes across uid changes (apt, su), and this process's bounding set lacks it (Docker's default set does)";
  }
  if (procWritable() && (!findTool('unshare') || !findTool('mount'))) {
    return "/proc/sys is writable here and 'unshare'/'mount' are missing to make it read-only";
  }
  return undefined;
}

export interface ProotAssets {
  proot: string;
  /** PRoot's loader, extracted once and executable by every uid (PRoot's own copy is 0500 root). */
  loader: string;
  /** Host Perl, its loader and libraries: [host path, path inside the root]. */
  binds: [string, string][];
  ldso: string;
  perl: string;
}

function perlBinds(perl: string): { binds: [string, string][]; ldso: string } {
  const out = execFileSync('ldd', [perl], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' } });
  const binds: [string, string][] = [[realpathSync(perl), `${INNER}/perl`]];
  let ldso = '';
  for (const line of out.split('\n')) {
    const lib = /^\s*(\S+) => (\/\S+)/.exec(line);
    if (lib) binds.push([realpathSync(lib[2]!), `${INNER}/lib/${lib[1]}`]);
    const interp = /^\s*(\/\S+) \(0x/.exec(line);
    if (interp) ldso = realpathSync(interp[1]!);
  }
  if (!ldso) throw new Error(`ldd ${perl}: no loader`);
  binds.push([ldso, `${INNER}/ld.so`]);
  return { binds, ldso };
}

/** Prepares the PRoot copy, its loader and the Perl binds in `dir` (once per sandbox). */
export async function prepareProot(dir: string, perl: string): Promise<ProotAssets> {
  const proot = findTool('proot');
  if (!proot)
    throw new KilnError('isolation', 'TOOL_MISSING', "PRoot mode needs 'proot', which is not installed", {
      hint: 'apt-get install proot',
    });
  await mkdir(dir, { recursive: true, mode: 0o711 });
  await chmod(dir, 0o711);
  const loader = posix.join(dir, 'loader');
  // PRoot 5.1 writes its loader to /tmp/prooted-<its pid>-* (mode 0500) while a tracee runs, and
  // removes it at exit: a tracee copies it out.
  const r = await runTool(
    proot,
    ['-r', '/', '/bin/sh', '-c', 'cat /tmp/prooted-"$PPID"-* > "$1"', 'sh', loader],
    {
      env: { PATH: '/usr/bin:/bin', PROOT_NO_SECCOMP: '1' },
    },
  );
  if (r.code !== 0 || (await stat(loader)).size === 0) {
    throw new KilnError(
      'isolation',
      'SANDBOX_SETUP',
      `cannot extract PRoot's loader: ${r.stderr.trim().split('\n')[0] ?? ''}`,
    );
  }
  await chmod(loader, 0o555);
  const { binds, ldso } = perlBinds(perl);
  return { proot, loader, binds, ldso, perl };
}

export interface ProotRunInput {
  assets: ProotAssets;
  root: string;
  spec: Pick<RunSpec, 'argv' | 'env' | 'uid' | 'gid' | 'additionalGids'>;
  /** Working directory inside the root. */
  cwd: string;
  setgroupsDenied: boolean;
  syscalls: InitSyscalls;
  /** Host entries bound at the same place inside the root (those that exist). */
  hostBinds: string[];
}

/** The environment the run init gives PRoot, and PRoot's command line (run init mode `proot`). */
export function prootCommand(i: ProotRunInput): { env: string[]; argv: string[] } {
  const env = [
    `PROOT_LOADER=${i.assets.loader}`,
    'PROOT_NO_SECCOMP=1',
    'PROOT_DONT_POLLUTE_ROOTFS=1',
    'PATH=/usr/bin:/bin',
  ];
  const runEnv = i.spec.env.filter((e) => e.includes('=') && !e.startsWith('='));
  const groups = [...new Set(i.spec.additionalGids)];
  const argv = [
    i.assets.proot,
    '-r',
    i.root,
    '-w',
    '/',
    ...i.hostBinds.flatMap((p) => ['-b', p]),
    ...i.assets.binds.flatMap(([h, g]) => ['-b', `${h}:${g}`]),
    `${INNER}/ld.so`,
    '--library-path',
    `${INNER}/lib`,
    `${INNER}/perl`,
    '-e',
    PROOT_INNER_SCRIPT,
    '--',
    i.cwd,
    String(i.spec.uid),
    String(i.spec.gid),
    groups.join(','),
    i.setgroupsDenied ? '1' : '0',
    String(i.syscalls.setgroups),
    String(i.syscalls.setsid),
    ...[i.syscalls.prctl, i.syscalls.capget, i.syscalls.capset].map(String),
    TRACER_CAPS.map((c) => CAP[c]).join(','),
    STATUS_FD_WORD,
    String(runEnv.length),
    ...runEnv,
    ...i.spec.argv,
  ];
  return { env, argv };
}
