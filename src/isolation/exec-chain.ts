/**
 * The last link of every rung: the command line of the run init (run-init.ts) that enters the root,
 * bounds the capabilities, drops to the RUN's user and groups, sets the exact environment and execs
 * the command. Pure: the same input always gives the same argv.
 */
import { posix } from 'node:path';
import { CAP, DOCKER_DEFAULT_CAPS } from './capabilities.ts';
import type { CapName } from './capabilities.ts';
import { RUN_INIT_SCRIPT } from './run-init.ts';
import type { InitSyscalls } from './run-init.ts';
import type { RunSpec } from './types.ts';

export interface ExecChainInput {
  spec: Pick<RunSpec, 'argv' | 'env' | 'uid' | 'gid' | 'additionalGids' | 'insecure'>;
  /** Host path of the root and of the working directory inside it. */
  root: string;
  hostCwd: string;
  /** pivot: PID 1 of a mount namespace pivot_roots (namespaced rungs); chroot: the plain rung. */
  mode: 'pivot' | 'chroot' | 'proot';
  /** proot: the seccomp filter (proot-filter.ts), hex. */
  filter?: string;
  /** The capability set a RUN keeps (ignored with RUN --security=insecure). */
  caps: readonly CapName[];
  /** Highest capability number of the running kernel (/proc/sys/kernel/cap_last_cap). */
  lastCap: number;
  syscalls: InitSyscalls;
  /** setgroups(2) is denied in this user namespace (a single-id map): the groups are kept. */
  setgroupsDenied: boolean;
}

export { DOCKER_DEFAULT_CAPS };

/** `perl -e <init> <mode> <root> <cwd> <uid> <gid> <groups> … <n> <env…> <argv…>`. */
export function execChain(perl: string, input: ExecChainInput): string[] {
  const { spec, syscalls: n } = input;
  const groups = [...new Set(spec.additionalGids)];
  const env = spec.env.filter((e) => e.includes('=') && !e.startsWith('='));
  const caps = spec.insecure ? 'all' : input.caps.map((c) => CAP[c]).join(',');
  const cwd = '/' + posix.relative(input.root, input.hostCwd);
  return [
    perl,
    '-e',
    RUN_INIT_SCRIPT,
    '--',
    input.mode,
    input.root,
    cwd,
    String(spec.uid),
    String(spec.gid),
    groups.join(','),
    input.setgroupsDenied ? '1' : '0',
    caps,
    String(input.lastCap),
    ...[n.pivotRoot, n.umount2, n.prctl, n.capget, n.capset, n.setgroups].map(String),
    input.filter ?? '-',
    String(env.length),
    ...env,
    ...spec.argv,
  ];
}
