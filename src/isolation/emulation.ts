/**
 * Whether a RUN step for a platform can execute on this host: natively, or through a binfmt_misc
 * entry (QEMU user emulation, as docker/setup-qemu-action, tonistiigi/binfmt and Debian's
 * qemu-user-static register it). The kernel matches an executable's first bytes against each
 * enabled entry's magic and mask; kiln does the same with a synthetic ELF header of the platform.
 * Only entries with the fix-binary flag (F) work inside a build root: without it the kernel opens
 * the interpreter by path at exec time, inside the chroot, where it does not exist.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Platform } from '../image/types.ts';
import { formatPlatform } from '../image/platform.ts';

export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

/** ELF identity of each architecture kiln knows: class (1 = 32-bit, 2 = 64-bit), byte order, e_machine. */
const ELF: Record<string, { cls: 1 | 2; bigEndian: boolean; machine: number }> = {
  amd64: { cls: 2, bigEndian: false, machine: 0x3e },
  '386': { cls: 1, bigEndian: false, machine: 0x03 },
  arm64: { cls: 2, bigEndian: false, machine: 0xb7 },
  arm: { cls: 1, bigEndian: false, machine: 0x28 },
  ppc64le: { cls: 2, bigEndian: false, machine: 0x15 },
  s390x: { cls: 2, bigEndian: true, machine: 0x16 },
  riscv64: { cls: 2, bigEndian: false, machine: 0xf3 },
  mips64le: { cls: 2, bigEndian: false, machine: 0x08 },
};

/** Architectures a host runs without emulation (x86-64 kernels run i386 binaries). */
const NATIVE_ALSO: Record<string, string[]> = { amd64: ['386'] };

export interface EmulationReport {
  platform: string;
  ok: boolean;
  how: 'native' | 'binfmt' | 'none';
  /** The binfmt_misc entry used, or why none can be. */
  reason: string;
}

interface BinfmtEntry {
  name: string;
  enabled: boolean;
  interpreter: string;
  flags: string;
  offset: number;
  magic: Buffer;
  mask: Buffer;
}

/** The first 20 bytes of an ELF executable of the architecture (ident, e_type = EXEC, e_machine). */
export function elfHeader(architecture: string): Buffer | undefined {
  const e = ELF[architecture];
  if (!e) return undefined;
  const b = Buffer.alloc(20);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = e.cls;
  b[5] = e.bigEndian ? 2 : 1;
  b[6] = 1;
  if (e.bigEndian) {
    b.writeUInt16BE(2, 16);
    b.writeUInt16BE(e.machine, 18);
  } else {
    b.writeUInt16LE(2, 16);
    b.writeUInt16LE(e.machine, 18);
  }
  return b;
}

export function parseBinfmtEntry(name: string, text: string): BinfmtEntry | undefined {
  const field = (k: string): string | undefined =>
    text
      .split('\n')
      .find((l) => l.startsWith(`${k} `) || l.startsWith(`${k}:`))
      ?.slice(k.length + 1)
      .trim();
  const magic = field('magic');
  if (magic === undefined) return undefined; // an extension (E) entry, not a magic one
  return {
    name,
    enabled: text.split('\n')[0]?.trim() === 'enabled',
    interpreter: field('interpreter') ?? '',
    flags: field('flags') ?? '',
    offset: Number(field('offset') ?? '0'),
    magic: Buffer.from(magic, 'hex'),
    mask: Buffer.from(field('mask') ?? 'ff'.repeat(magic.length / 2), 'hex'),
  };
}

function matches(entry: BinfmtEntry, header: Buffer): boolean {
  if (entry.offset + entry.magic.length > header.length) return false;
  for (let i = 0; i < entry.magic.length; i++) {
    const h = header[entry.offset + i] ?? 0;
    if ((h & (entry.mask[i] ?? 0xff)) !== ((entry.magic[i] ?? 0) & (entry.mask[i] ?? 0xff))) return false;
  }
  return true;
}

function readEntries(dir: string): BinfmtEntry[] | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  if (!names.includes('status')) return undefined;
  const out: BinfmtEntry[] = [];
  for (const n of names) {
    if (n === 'status' || n === 'register') continue;
    try {
      const e = parseBinfmtEntry(n, readFileSync(join(dir, n), 'utf8'));
      if (e) out.push(e);
    } catch {
      // An entry removed while listing: not usable.
    }
  }
  return out;
}

/** Can a RUN step of `want` execute here, and how. */
export function emulationFor(want: Platform, host: Platform, dir = BINFMT_DIR): EmulationReport {
  const platform = formatPlatform(want);
  if (want.os !== 'linux')
    return { platform, ok: false, how: 'none', reason: `${want.os} binaries cannot run on linux` };
  if (want.architecture === host.architecture || NATIVE_ALSO[host.architecture]?.includes(want.architecture))
    return { platform, ok: true, how: 'native', reason: 'native' };
  const header = elfHeader(want.architecture);
  if (!header)
    return {
      platform,
      ok: false,
      how: 'none',
      reason: `kiln does not know the ELF machine of ${want.architecture}`,
    };
  const entries = readEntries(dir);
  if (!entries)
    return {
      platform,
      ok: false,
      how: 'none',
      reason: `binfmt_misc is not mounted at ${dir}: mount it (mount -t binfmt_misc binfmt_misc ${dir}) and register QEMU (qemu-user-static, tonistiigi/binfmt or docker/setup-qemu-action)`,
    };
  const found = entries.filter((e) => e.enabled && matches(e, header));
  const fixed = found.find((e) => e.flags.includes('F'));
  if (fixed)
    return {
      platform,
      ok: true,
      how: 'binfmt',
      reason: `binfmt_misc ${fixed.name} (${fixed.interpreter}, flags ${fixed.flags})`,
    };
  if (found[0])
    return {
      platform,
      ok: false,
      how: 'none',
      reason: `binfmt_misc ${found[0].name} has no F (fix-binary) flag, so its interpreter ${found[0].interpreter} is looked up inside the build root: register it again with the F flag (tonistiigi/binfmt and docker/setup-qemu-action do)`,
    };
  return {
    platform,
    ok: false,
    how: 'none',
    reason: `no enabled binfmt_misc entry runs ${want.architecture} binaries: install qemu-user-static or run tonistiigi/binfmt / docker/setup-qemu-action`,
  };
}

/** The platforms `kiln probe` reports on when none are named: the ones registries publish most. */
export const PROBED_PLATFORMS: readonly Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: '386' },
  { os: 'linux', architecture: 'arm64' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
  { os: 'linux', architecture: 'arm', variant: 'v6' },
  { os: 'linux', architecture: 'ppc64le' },
  { os: 'linux', architecture: 's390x' },
  { os: 'linux', architecture: 'riscv64' },
];

/** One line per platform, as `kiln probe` prints them: `ok` or `FAIL` and why. */
export function formatEmulation(reports: readonly EmulationReport[]): string {
  const w = Math.max(...reports.map((r) => r.platform.length));
  return reports
    .map((r) => `  RUN for ${r.platform.padEnd(w)}  ${r.ok ? 'ok  ' : 'FAIL'}  ${r.reason}`)
    .join('\n');
}
