/**
 * QEMU user emulation for foreign-platform RUN steps in tests: binfmt_misc mounted and Debian's
 * qemu-user-static entries (fix-binary flag F) registered, as systemd-binfmt would on boot.
 * Needs root; returns why not when it cannot.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { BINFMT_DIR } from '../../src/isolation/emulation.ts';

const CONFS: Record<string, string> = {
  arm64: '/usr/lib/binfmt.d/qemu-aarch64.conf',
  arm: '/usr/lib/binfmt.d/qemu-arm.conf',
};

/** undefined when every architecture asked for can run here; else the reason it cannot. */
export function ensureQemuBinfmt(archs: string[] = ['arm64', 'arm']): string | undefined {
  if (process.getuid?.() !== 0) return 'registering binfmt_misc entries needs root';
  try {
    if (!existsSync(`${BINFMT_DIR}/status`))
      execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', BINFMT_DIR]);
    for (const arch of archs) {
      const conf = CONFS[arch];
      if (!conf || !existsSync(conf)) return `no ${conf ?? arch} (apt-get install qemu-user-static)`;
      const line = readFileSync(conf, 'utf8').trim();
      const name = line.split(':')[1] ?? '';
      if (!existsSync(`${BINFMT_DIR}/${name}`)) writeFileSync(`${BINFMT_DIR}/register`, line);
    }
  } catch (e) {
    return `cannot register binfmt_misc entries: ${e instanceof Error ? e.message : String(e)}`;
  }
  return undefined;
}
