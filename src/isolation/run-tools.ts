/**
 * The host tools one sandbox rung drives, found once by absolute path when the sandbox is created, so
 * that a missing tool is a clear isolation error before any RUN starts.
 */
import { readFileSync } from 'node:fs';
import { KilnError } from '../util/errors.ts';
import { syscallNumbers } from './run-init.ts';
import type { InitSyscalls } from './run-init.ts';
import { findTool } from './tools.ts';
import type { Rung } from './types.ts';

export interface RunTools {
  unshare: string;
  sh: string;
  mount: string;
  mknod: string;
  cp: string;
  /** Interpreter of the run init (run-init.ts). */
  perl: string;
  hostname?: string;
  ip?: string;
  syscalls: InitSyscalls;
  /** Highest capability number of this kernel. */
  lastCap: number;
}

function lastCap(): number {
  try {
    const n = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
    if (Number.isInteger(n) && n > 0) return n;
  } catch {
    // no /proc: the kernel's 6.x value
  }
  return 40;
}

export function requireRunTools(rung: Rung): RunTools {
  const need = (name: string, pkg: string): string => {
    const p = findTool(name);
    if (!p) {
      throw new KilnError(
        'isolation',
        'TOOL_MISSING',
        `the ${rung} sandbox needs '${name}', which is not installed`,
        {
          hint: `install ${pkg} (e.g. apt-get install ${pkg})`,
        },
      );
    }
    return p;
  };
  const syscalls = syscallNumbers(process.arch);
  if (!syscalls) {
    throw new KilnError(
      'isolation',
      'ARCH_UNSUPPORTED',
      `the ${rung} sandbox does not know the system call numbers of ${process.arch}`,
      { hint: 'kiln sandboxes RUN steps on x64, arm64 and riscv64 hosts' },
    );
  }
  const namespaced = rung !== 'plain';
  return {
    unshare: namespaced ? need('unshare', 'util-linux') : '',
    mount: namespaced ? need('mount', 'mount') : '',
    sh: need('sh', 'dash'),
    perl: need('perl', 'perl-base'),
    mknod: rung === 'plain' ? need('mknod', 'coreutils') : '',
    cp: rung === 'plain' ? need('cp', 'coreutils') : '',
    hostname: findTool('hostname'),
    ip: findTool('ip'),
    syscalls,
    lastCap: lastCap(),
  };
}
