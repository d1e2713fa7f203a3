/**
 * A real Debian bookworm base image for tests and benchmarks: `debootstrap --variant=minbase` into a
 * directory (from the apt mirror this machine already uses), cached as a tarball under
 * /var/cache/kiln-test, turned into a one-layer OCI layout beside it and pushed with skopeo.
 * The first run takes a minute or two; later runs reuse both caches.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SetupError } from './setup-error.ts';
import { skopeoPushLayout } from './skopeo-push.ts';
import { ociArch } from './images.ts';
import { writeImageLayout, writeMultiPlatformLayout } from './oci-layout.ts';
import type { TestRegistry } from './registry.ts';

const execFileP = promisify(execFile);

export const DEBIAN_CACHE = '/var/cache/kiln-test';
export const DEBIAN_ROOTFS_TARBALL = join(DEBIAN_CACHE, 'debian-bookworm-minbase.tar.gz');
const LAYOUT_REF = 'bookworm';
const SUITE = 'bookworm';
const FALLBACK_MIRROR = 'http://deb.debian.org/debian';

/**
 * The Debian mirror this machine's apt uses (first `URIs:` of a deb822 source or first `deb` line
 * whose suite is not a -security one), so that debootstrap and apt inside builds reach the same host.
 */
export function debianMirror(): string {
  const files: string[] = [];
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  if (existsSync('/etc/apt/sources.list.d')) {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) {
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(join('/etc/apt/sources.list.d', f));
    }
  }
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const uris = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
        const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1] ?? '';
        if (uris && !/-security/.test(suites) && /debian\/?$/.test(uris)) return uris.replace(/\/$/, '');
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
        if (m && !m[2]!.includes('-security') && /debian\/?$/.test(m[1]!)) return m[1]!.replace(/\/$/, '');
      }
    }
  }
  return FALLBACK_MIRROR;
}

function fail(code: string, message: string, e: unknown, hint: string): SetupError {
  const stderr = (e as { stderr?: string }).stderr ?? String(e);
  return new SetupError('internal', code, message, {
    hint: `${hint}; ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
    cause: e,
  });
}

/** The cached rootfs tarball of an architecture (the host's keeps its historical name). */
export function rootfsTarball(arch: string = ociArch()): string {
  return arch === ociArch()
    ? DEBIAN_ROOTFS_TARBALL
    : join(DEBIAN_CACHE, `debian-bookworm-minbase-${arch}.tar.gz`);
}

/**
 * debootstrap of a foreign architecture: the first stage unpacks, the second runs the packages'
 * scripts inside the root through QEMU (binfmt_misc with the F flag, see test/helpers/binfmt.ts).
 */
async function debootstrap(arch: string, rootfs: string, mirror: string): Promise<void> {
  const opts = { maxBuffer: 256 << 20, timeout: 40 * 60_000 };
  if (arch === ociArch()) {
    await execFileP('debootstrap', ['--variant=minbase', SUITE, rootfs, mirror], opts);
    return;
  }
  await execFileP(
    'debootstrap',
    ['--foreign', `--arch=${arch}`, '--variant=minbase', SUITE, rootfs, mirror],
    opts,
  );
  await execFileP('chroot', [rootfs, '/debootstrap/debootstrap', '--second-stage'], opts);
}

/** debootstraps bookworm minbase and writes the rootfs tarball atomically (tmp file + rename). */
async function buildRootfsTarball(arch: string = ociArch()): Promise<void> {
  await mkdir(DEBIAN_CACHE, { recursive: true });
  const work = await mkdtemp(join(DEBIAN_CACHE, 'debootstrap-'));
  const mirror = debianMirror();
  try {
    const rootfs = join(work, 'rootfs');
    try {
      await debootstrap(arch, rootfs, mirror);
    } catch (e) {
      throw fail(
        'TEST_DEBOOTSTRAP_FAILED',
        `debootstrap of ${SUITE} from ${mirror} failed`,
        e,
        'check the mirror',
      );
    }
    // apt inside builds must reach the same mirror; drop the downloaded .debs and lists to stay small.
    await writeFile(
      join(rootfs, 'etc', 'apt', 'sources.list'),
      `deb ${mirror} ${SUITE} main\ndeb ${mirror} ${SUITE}-updates main\n`,
    );
    await rm(join(rootfs, 'var', 'cache', 'apt', 'archives'), { recursive: true, force: true });
    await mkdir(join(rootfs, 'var', 'cache', 'apt', 'archives', 'partial'), { recursive: true });
    await rm(join(rootfs, 'var', 'lib', 'apt', 'lists'), { recursive: true, force: true });
    await mkdir(join(rootfs, 'var', 'lib', 'apt', 'lists', 'partial'), { recursive: true });
    await writeFile(join(rootfs, 'etc', 'resolv.conf'), '');
    await writeFile(join(rootfs, 'etc', 'hostname'), 'localhost\n');
    const tmpTar = join(work, 'rootfs.tar.gz');
    try {
      await execFileP('tar', [
        '--sort=name',
        '--numeric-owner',
        '--xattrs',
        '--mtime=@0',
        '--format=posix',
        '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
        '-C',
        rootfs,
        '-czf',
        tmpTar,
        '.',
      ]);
    } catch (e) {
      throw fail('TEST_ROOTFS_TAR_FAILED', 'tar of the debootstrapped rootfs failed', e, 'check free space');
    }
    await rename(tmpTar, rootfsTarball(arch));
  } finally {
    // A failed debootstrap can leave proc/sys mounted inside; never recurse into them.
    for (const m of ['proc', 'sys']) {
      await execFileP('umount', ['-l', join(work, 'rootfs', m)]).catch(() => undefined);
    }
    await rm(work, { recursive: true, force: true });
  }
}

const DEBIAN_CONFIG = {
  Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  Cmd: ['bash'],
};

/** One-layer OCI layout from the rootfs tarball (whose gzip stream is used as the layer as is). */
function buildLayout(dest: string): Promise<void> {
  return writeImageLayout(dest, {
    layers: [DEBIAN_ROOTFS_TARBALL],
    config: DEBIAN_CONFIG,
    architecture: ociArch(),
    createdBy: 'kiln test: debootstrap --variant=minbase bookworm',
    refName: LAYOUT_REF,
  });
}

/**
 * A cached OCI layout whose ref `bookworm` is an index of minbase images for every architecture
 * given (each debootstrapped once, the foreign ones through QEMU: a slow first run).
 */
export async function multiArchDebianLayout(archs: string[]): Promise<string> {
  const dest = join(DEBIAN_CACHE, `debian-bookworm-minbase-oci-${archs.join('_')}-v1`);
  if (existsSync(join(dest, 'index.json'))) return dest;
  for (const arch of archs) if (!existsSync(rootfsTarball(arch))) await buildRootfsTarball(arch);
  await writeMultiPlatformLayout(
    dest,
    LAYOUT_REF,
    archs.map((architecture) => ({
      layers: [rootfsTarball(architecture)],
      config: DEBIAN_CONFIG,
      architecture,
      createdBy: `kiln test: debootstrap --variant=minbase bookworm (${architecture})`,
      refName: LAYOUT_REF,
    })),
  );
  return dest;
}

/** Pushes the multi-architecture bookworm index (skopeo copy --all); returns the index digest. */
export async function pushMultiArchDebian(
  reg: TestRegistry,
  repo: string,
  tag: string,
  archs: string[],
): Promise<string> {
  const layout = await multiArchDebianLayout(archs);
  return skopeoPushLayout(reg, layout, LAYOUT_REF, { repo, tag }, { all: true, tmpRoot: DEBIAN_CACHE });
}

let layoutPromise: Promise<string> | undefined;

/** The cached bookworm OCI layout dir (ref name `bookworm`), debootstrapped on first use. */
export function debianLayout(): Promise<string> {
  layoutPromise ??= (async () => {
    const dest = join(DEBIAN_CACHE, `debian-bookworm-minbase-oci-${ociArch()}-v1`);
    if (existsSync(join(dest, 'index.json'))) return dest;
    await mkdir(DEBIAN_CACHE, { recursive: true });
    if (!existsSync(DEBIAN_ROOTFS_TARBALL)) await buildRootfsTarball();
    await buildLayout(dest);
    return dest;
  })();
  layoutPromise.catch(() => (layoutPromise = undefined));
  return layoutPromise;
}

/** Pushes the debian:bookworm minbase image to `<host>/<repo>:<tag>`; returns its manifest digest. */
export async function pushDebianImage(reg: TestRegistry, repo: string, tag: string): Promise<string> {
  return skopeoPushLayout(reg, await debianLayout(), LAYOUT_REF, { repo, tag }, { tmpRoot: DEBIAN_CACHE });
}
