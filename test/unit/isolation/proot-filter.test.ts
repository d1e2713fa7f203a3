import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEG_PID_MARK, PID_MARK, prootFilterHex } from '../../../src/isolation/proot-filter.ts';

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

function decode(hex: string): Insn[] {
  const b = Buffer.from(hex, 'hex');
  const out: Insn[] = [];
  for (let i = 0; i < b.length; i += 8) {
    out.push({ code: b.readUInt16LE(i), jt: b[i + 2]!, jf: b[i + 3]!, k: b.readUInt32LE(i + 4) });
  }
  return out;
}

/** A tiny classic-BPF interpreter for the instructions the filter uses. */
function run(insns: Insn[], nr: number, args: number[] = [], arch = 0xc000003e): number {
  const data = Buffer.alloc(64);
  data.writeUInt32LE(nr, 0);
  data.writeUInt32LE(arch, 4);
  args.forEach((a, i) => data.writeUInt32LE(a >>> 0, 16 + 8 * i));
  let acc = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const x = insns[pc]!;
    if (x.code === 0x20) acc = data.readUInt32LE(x.k);
    else if (x.code === 0x06) return x.k;
    else if (x.code === 0x15) pc += acc === x.k ? x.jt : x.jf;
    else if (x.code === 0x35) pc += acc >= x.k ? x.jt : x.jf;
    else if (x.code === 0x45) pc += (acc & x.k) !== 0 ? x.jt : x.jf;
    else throw new Error(`opcode ${x.code}`);
  }
  throw new Error('fell off the end');
}

const ALLOW = 0x7fff0000;
const ENOSYS = 0x00050000 | 38;
const EPERM = 0x00050000 | 1;

test('PRoot filter: untranslated new calls get ENOSYS, old and path-free ones pass', () => {
  const p = decode(prootFilterHex('x64')!);
  for (const nr of [332, 435, 437, 439, 425, 322, 452, 463]) assert.equal(run(p, nr), ENOSYS, `nr ${nr}`);
  for (const nr of [0, 2, 59, 257, 262, 316, 318, 334, 436]) assert.equal(run(p, nr), ALLOW, `nr ${nr}`);
  assert.equal(run(p, 59, [], 0x40000003), ENOSYS, 'i386 calls');
  assert.equal(run(p, 0x40000000 + 2), ENOSYS, 'x32 calls');
});

test('PRoot filter: PRoot cannot be signalled, attached or escaped by an untraced clone', () => {
  const p = decode(prootFilterHex('x64')!);
  assert.equal(run(p, 62, [PID_MARK, 9]), EPERM, 'kill(proot)');
  assert.equal(run(p, 62, [NEG_PID_MARK, 9]), EPERM, 'kill(-proot group)');
  assert.equal(run(p, 62, [0xffffffff, 9]), EPERM, 'kill(-1)');
  assert.equal(run(p, 62, [4242, 9]), ALLOW, 'kill(another)');
  assert.equal(run(p, 234, [4242, PID_MARK, 9]), EPERM, 'tgkill');
  assert.equal(run(p, 200, [PID_MARK, 9]), EPERM, 'tkill');
  assert.equal(run(p, 434, [PID_MARK]), EPERM, 'pidfd_open(proot)');
  assert.equal(run(p, 434, [4242]), ALLOW, 'pidfd_open(another)');
  assert.equal(run(p, 424, [3, 9]), ENOSYS, 'pidfd_send_signal');
  assert.equal(run(p, 101, [16, 4242]), EPERM, 'PTRACE_ATTACH');
  assert.equal(run(p, 101, [0x4206, 4242]), EPERM, 'PTRACE_SEIZE');
  assert.equal(run(p, 101, [0]), ALLOW, 'PTRACE_TRACEME');
  assert.equal(run(p, 56, [0x00800000 | 17]), EPERM, 'clone(CLONE_UNTRACED)');
  assert.equal(run(p, 56, [17]), ALLOW, 'fork-like clone');
});

test('PRoot filter: only built for x86_64', () => {
  assert.equal(prootFilterHex('arm64'), undefined);
});
