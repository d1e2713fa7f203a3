/**
 * The seccomp filter every process of a PRoot-mode plain RUN runs under (PRoot itself included,
 * installed by the run init before it execs PRoot). Debian's PRoot (5.1) predates many system calls:
 * a path it does not know is not translated, so the kernel would resolve it on the host. Each such
 * call fails with ENOSYS instead, and glibc falls back to the older call PRoot translates (statx to
 * newfstatat, clone3 to clone, faccessat2 to faccessat, openat2, io_uring...). PRoot is the tracer:
 * if it died, its tracees would go on untranslated, so no process may signal, pidfd or ptrace-attach
 * it, and clone(CLONE_UNTRACED) (a child PRoot would not see) is refused.
 *
 * The filter names PRoot's pid, which exists only after the init forks: the program carries
 * PID_MARK (and its negation) where the pid goes, and the init patches them in (run-init.ts).
 */

/** Placeholder for PRoot's pid in the program (patched by the run init). */
export const PID_MARK = 0x7e57ab1e;
/** Placeholder for minus PRoot's pid (its process group, as kill(2) takes it). */
export const NEG_PID_MARK = (0x1_0000_0000 - PID_MARK) >>> 0;

const LD_ABS = 0x20;
const JEQ = 0x15;
const JGE = 0x35;
const JSET = 0x45;
const RET = 0x06;
const ALLOW = 0x7fff0000;
const ERRNO = 0x00050000;
const ENOSYS = 38;
const EPERM = 1;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const CLONE_UNTRACED = 0x00800000;
const PTRACE_ATTACH = 16;
const PTRACE_SEIZE = 0x4206;

/** x86_64 numbers. */
const NR = {
  ptrace: 101,
  clone: 56,
  kill: 62,
  rtSigqueueinfo: 129,
  tkill: 200,
  tgkill: 234,
  rtTgsigqueueinfo: 297,
  pidfdOpen: 434,
  /** First call PRoot 5.1 does not know (Debian added renameat2, 316). */
  firstUnknown: 313,
  x32: 0x40000000,
};

/** Calls from 313 on that take no path and do not reach another process: allowed. */
const PATHLESS_NEW = [
  314, 315, 316, 317, 318, 319, 324, 325, 326, 327, 328, 329, 330, 331, 333, 334, 436, 441, 447, 448, 449,
  450, 451, 453, 454, 455, 456, 462,
];

interface Insn {
  code: number;
  k: number;
  jt?: string;
  jf?: string;
}

const arg = (i: number): number => 16 + 8 * i;

function program(): { insns: Insn[]; labels: Map<string, number> } {
  const insns: Insn[] = [];
  const labels = new Map<string, number>();
  const ld = (k: number) => insns.push({ code: LD_ABS, k });
  const jeq = (k: number, jt: string) => insns.push({ code: JEQ, k, jt });
  const ret = (k: number) => insns.push({ code: RET, k });
  const at = (name: string) => labels.set(name, insns.length);
  ld(4);
  insns.push({ code: JEQ, k: AUDIT_ARCH_X86_64, jf: 'nosys' });
  ld(0);
  insns.push({ code: JGE, k: NR.x32, jt: 'nosys' });
  insns.push({ code: JGE, k: NR.firstUnknown, jt: 'new' });
  jeq(NR.kill, 'kill');
  jeq(NR.tkill, 'a0');
  jeq(NR.rtSigqueueinfo, 'a0');
  jeq(NR.tgkill, 'a01');
  jeq(NR.rtTgsigqueueinfo, 'a01');
  jeq(NR.ptrace, 'ptrace');
  jeq(NR.clone, 'clone');
  ret(ALLOW);
  at('kill');
  ld(arg(0));
  jeq(PID_MARK, 'perm');
  jeq(NEG_PID_MARK, 'perm');
  jeq(0xffffffff, 'perm');
  ret(ALLOW);
  at('a0');
  ld(arg(0));
  jeq(PID_MARK, 'perm');
  ret(ALLOW);
  at('a01');
  ld(arg(0));
  jeq(PID_MARK, 'perm');
  ld(arg(1));
  jeq(PID_MARK, 'perm');
  ret(ALLOW);
  at('ptrace');
  ld(arg(0));
  jeq(PTRACE_ATTACH, 'perm');
  jeq(PTRACE_SEIZE, 'perm');
  ret(ALLOW);
  at('clone');
  ld(arg(0));
  insns.push({ code: JSET, k: CLONE_UNTRACED, jt: 'perm' });
  ret(ALLOW);
  at('new');
  jeq(NR.pidfdOpen, 'pidfd');
  for (const n of PATHLESS_NEW) jeq(n, 'allow');
  at('nosys');
  ret(ERRNO | ENOSYS);
  at('pidfd');
  ld(arg(0));
  jeq(PID_MARK, 'perm');
  ret(ALLOW);
  at('perm');
  ret(ERRNO | EPERM);
  at('allow');
  ret(ALLOW);
  return { insns, labels };
}

/** The filter as struct sock_filter[] bytes, hex-encoded (undefined off x86_64). */
export function prootFilterHex(arch: string = process.arch): string | undefined {
  if (arch !== 'x64') return undefined;
  const { insns, labels } = program();
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((x, i) => {
    const off = (l?: string): number => {
      if (l === undefined) return 0;
      const d = labels.get(l)! - i - 1;
      if (d < 0 || d > 255) throw new RangeError(`seccomp jump to ${l} out of range`);
      return d;
    };
    buf.writeUInt16LE(x.code, i * 8);
    buf.writeUInt8(off(x.jt), i * 8 + 2);
    buf.writeUInt8(off(x.jf), i * 8 + 3);
    buf.writeUInt32LE(x.k >>> 0, i * 8 + 4);
  });
  return buf.toString('hex');
}
