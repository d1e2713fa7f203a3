import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { elfHeader, emulationFor, parseBinfmtEntry } from '../../../src/isolation/emulation.ts';
import { ensureQemuBinfmt } from '../../helpers/binfmt.ts';

const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const ARMV7 = { os: 'linux', architecture: 'arm', variant: 'v7' };

// The two entries as /proc/sys/fs/binfmt_misc shows them after Debian's qemu-user-static registers.
const AARCH64 = `enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
`;
const ARM = `enabled
interpreter /usr/libexec/qemu-binfmt/arm-binfmt-P
flags: POF
offset 0
magic 7f454c4601010100000000000000000002002800
mask ffffffffffffff00fffffffffffffffffeffffff
`;

function binfmtDir(entries: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-binfmt-'));
  writeFileSync(join(dir, 'status'), 'enabled\n');
  writeFileSync(join(dir, 'register'), '');
  for (const [n, t] of Object.entries(entries)) writeFileSync(join(dir, n), t);
  return dir;
}

test('the host platform, and i386 on amd64, run natively', () => {
  assert.equal(emulationFor(AMD64, AMD64, '/nonexistent').how, 'native');
  assert.equal(emulationFor({ os: 'linux', architecture: '386' }, AMD64, '/nonexistent').how, 'native');
});

test('a foreign platform runs through a matching enabled F entry', () => {
  const dir = binfmtDir({ 'qemu-aarch64': AARCH64, 'qemu-arm': ARM });
  const a = emulationFor(ARM64, AMD64, dir);
  assert.equal(a.ok, true);
  assert.equal(a.how, 'binfmt');
  assert.match(a.reason, /qemu-aarch64/);
  const b = emulationFor(ARMV7, AMD64, dir);
  assert.match(b.reason, /qemu-arm\b/);
});

test('an entry without the F flag, a disabled entry, no entry and no binfmt_misc are each refused with the reason', () => {
  const noF = binfmtDir({ 'qemu-aarch64': AARCH64.replace('flags: POF', 'flags: P') });
  assert.match(emulationFor(ARM64, AMD64, noF).reason, /no F \(fix-binary\) flag/);
  assert.equal(emulationFor(ARM64, AMD64, noF).ok, false);
  const disabled = binfmtDir({ 'qemu-aarch64': AARCH64.replace('enabled', 'disabled') });
  assert.match(emulationFor(ARM64, AMD64, disabled).reason, /no enabled binfmt_misc entry runs arm64/);
  // The arm entry must not claim arm64 binaries (class and machine differ).
  const armOnly = binfmtDir({ 'qemu-arm': ARM });
  assert.equal(emulationFor(ARM64, AMD64, armOnly).ok, false);
  assert.match(emulationFor(ARM64, AMD64, '/nonexistent').reason, /binfmt_misc is not mounted/);
  assert.match(
    emulationFor({ os: 'windows', architecture: 'amd64' }, AMD64, noF).reason,
    /cannot run on linux/,
  );
});

test('synthetic ELF headers match the magic Debian registers, byte for byte under the mask', () => {
  const e = parseBinfmtEntry('qemu-aarch64', AARCH64)!;
  const h = elfHeader('arm64')!;
  for (let i = 0; i < e.magic.length; i++)
    assert.equal(h[i]! & e.mask[i]!, e.magic[i]! & e.mask[i]!, `byte ${i}`);
  assert.equal(elfHeader('sparc'), undefined);
});

test(
  'on this machine: after registering qemu-user-static, arm64 and arm/v7 can RUN',
  { skip: process.getuid?.() !== 0 && 'needs root' },
  () => {
    const why = ensureQemuBinfmt();
    if (why) return assert.fail(why);
    assert.equal(emulationFor(ARM64, AMD64).ok, true, emulationFor(ARM64, AMD64).reason);
    assert.equal(emulationFor(ARMV7, AMD64).ok, true, emulationFor(ARMV7, AMD64).reason);
  },
);
