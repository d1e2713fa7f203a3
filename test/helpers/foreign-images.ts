/**
 * Multi-platform test bases from Debian packages: busybox-static for each architecture
 * (`dpkg --add-architecture` + `apt-get download`, cached under /var/cache/kiln-test/debs), written
 * as one OCI image index and pushed with `skopeo copy --all`.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { busyboxLayerGz, BUSYBOX_CONFIG, CACHE_ROOT, ociArch } from './images.ts';
import { writeMultiPlatformLayout, type LayoutImage } from './oci-layout.ts';
import type { TestRegistry } from './registry.ts';
import { SetupError } from './setup-error.ts';
import { skopeoPushLayout } from './skopeo-push.ts';

const execFileP = promisify(execFile);
const DEBS = '/var/cache/kiln-test/debs';

export interface TestPlatform {
  architecture: string;
  variant?: string;
}

/** Debian's name for an OCI architecture (and variant). */
function debianArch(p: TestPlatform): string {
  if (p.architecture === 'arm') return p.variant === 'v5' ? 'armel' : 'armhf';
  return p.architecture;
}

/** Path of busybox-static's binary for the platform (the host's own for the host platform). */
export async function busyboxBinary(p: TestPlatform): Promise<string> {
  if (p.architecture === ociArch()) return '/bin/busybox';
  const arch = debianArch(p);
  const dir = join(DEBS, arch);
  const bin = join(dir, 'root', 'bin', 'busybox');
  if (existsSync(bin)) return bin;
  await mkdir(dir, { recursive: true });
  try {
    const { stdout } = await execFileP('dpkg', ['--print-foreign-architectures']);
    if (!stdout.split('\n').includes(arch)) {
      await execFileP('dpkg', ['--add-architecture', arch]);
      await execFileP('apt-get', ['update', '-qq'], { maxBuffer: 64 << 20 });
    }
    if (!readdirSync(dir).some((f) => f.endsWith('.deb')))
      await execFileP('apt-get', ['download', `busybox-static:${arch}`], { cwd: dir, maxBuffer: 64 << 20 });
    const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download busybox-static:${arch} left no .deb`);
    const tmp = await mkdtemp(join(dir, 'x-'));
    await execFileP('dpkg-deb', ['-x', join(dir, deb), tmp]);
    await execFileP('mv', [tmp, join(dir, 'root')]);
  } catch (e) {
    throw new SetupError('internal', 'TEST_FOREIGN_BUSYBOX', `cannot get busybox-static for ${arch}`, {
      hint: 'needs root and Debian mirror access (dpkg --add-architecture, apt-get download)',
      cause: e,
    });
  }
  return bin;
}

const layouts = new Map<string, Promise<string>>();

/** A cached OCI layout whose ref `busybox` is an index of busybox images for every platform given. */
export function multiPlatformBusyboxLayout(platforms: TestPlatform[]): Promise<string> {
  const id = platforms.map((p) => [p.architecture, p.variant].filter(Boolean).join('-')).join('_');
  let p = layouts.get(id);
  if (!p) {
    p = (async () => {
      const dest = join(CACHE_ROOT, `busybox-multi-${id}-v1`);
      if (existsSync(join(dest, 'index.json'))) return dest;
      await mkdir(CACHE_ROOT, { recursive: true });
      const work = await mkdtemp(join(CACHE_ROOT, 'multi-'));
      try {
        const imgs: LayoutImage[] = [];
        for (const [i, plat] of platforms.entries()) {
          const w = join(work, String(i));
          await mkdir(w);
          imgs.push({
            layers: [await busyboxLayerGz(await busyboxBinary(plat), w)],
            config: BUSYBOX_CONFIG,
            architecture: plat.architecture,
            ...(plat.variant ? { variant: plat.variant } : {}),
            createdBy: `kiln test: busybox-static rootfs (${debianArch(plat)})`,
            refName: 'busybox',
          });
        }
        await writeMultiPlatformLayout(dest, 'busybox', imgs);
        return dest;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    })();
    p.catch(() => layouts.delete(id));
    layouts.set(id, p);
  }
  return p;
}

/** Pushes the multi-platform busybox index to `<host>/<repo>:<tag>`; returns the index digest. */
export async function pushMultiPlatformBusybox(
  registry: TestRegistry,
  repo: string,
  tag: string,
  platforms: TestPlatform[],
): Promise<string> {
  const layout = await multiPlatformBusyboxLayout(platforms);
  return skopeoPushLayout(registry, layout, 'busybox', { repo, tag }, { all: true, tmpRoot: CACHE_ROOT });
}
