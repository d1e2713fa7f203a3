/**
 * A minimal real image for tests: Debian's static busybox with its applet symlinks and root/nobody
 * users, written by hand as an OCI layout (cached under /tmp/kiln-test-cache) and pushed with skopeo.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { SetupError } from './setup-error.ts';
import { registryCreds } from './registry.ts';
import { writeImageLayout } from './oci-layout.ts';
import type { TestRegistry } from './registry.ts';

const execFileP = promisify(execFile);

export const CACHE_ROOT = '/tmp/kiln-test-cache';
const LAYOUT_REF = 'busybox';
const BUSYBOX = '/bin/busybox';

export function ociArch(arch: string = process.arch): string {
  return arch === 'x64' ? 'amd64' : arch === 'ia32' ? '386' : arch;
}

async function ensureBusybox(): Promise<void> {
  if (existsSync(BUSYBOX)) return;
  try {
    await execFileP('apt-get', ['install', '-y', 'busybox-static'], { maxBuffer: 64 << 20 });
  } catch (e) {
    throw new SetupError(
      'internal',
      'TEST_NO_BUSYBOX',
      `${BUSYBOX} is missing and busybox-static did not install`,
      {
        hint: 'run `apt-get install -y busybox-static`',
        cause: e,
      },
    );
  }
}

/**
 * A busybox rootfs layer (gzip) from a busybox-static binary of any architecture: the binary, one
 * symlink per applet (the applet list comes from the host's busybox of the same Debian release, so
 * foreign binaries need no emulation here), /etc/passwd and /etc/group with root and nobody.
 */
export async function busyboxLayerGz(busybox: string, work: string): Promise<string> {
  await ensureBusybox();
  const rootfs = join(work, 'rootfs');
  for (const d of ['bin', 'etc', 'root', 'tmp']) await mkdir(join(rootfs, d), { recursive: true });
  await chmod(join(rootfs, 'root'), 0o700);
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await copyFile(busybox, join(rootfs, 'bin', 'busybox'));
  await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
  const { stdout } = await execFileP(BUSYBOX, ['--list']);
  const applets = new Set(stdout.split('\n').map((s) => s.trim()));
  for (const must of ['sh', 'ls', 'cat', 'echo']) applets.add(must);
  for (const a of [...applets].sort()) {
    if (a === '' || a === 'busybox' || a.includes('/')) continue;
    await symlink('busybox', join(rootfs, 'bin', a));
  }
  await writeFile(
    join(rootfs, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  const tarPath = join(work, 'layer.tar');
  await execFileP('tar', [
    '--sort=name',
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '--mtime=@0',
    '--format=gnu',
    '-C',
    rootfs,
    '-cf',
    tarPath,
    'bin',
    'etc',
    'root',
    'tmp',
  ]);
  const gzPath = join(work, 'layer.tar.gz');
  await writeFile(gzPath, gzipSync(await readFile(tarPath), { level: 6 }));
  return gzPath;
}

export const BUSYBOX_CONFIG = {
  Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  Cmd: ['sh'],
};

async function buildLayout(dest: string): Promise<void> {
  await mkdir(CACHE_ROOT, { recursive: true });
  const work = await mkdtemp(join(CACHE_ROOT, 'build-'));
  try {
    await writeImageLayout(dest, {
      layers: [await busyboxLayerGz(BUSYBOX, work)],
      config: BUSYBOX_CONFIG,
      architecture: ociArch(),
      createdBy: 'kiln test: busybox-static rootfs',
      refName: LAYOUT_REF,
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

let layoutPromise: Promise<string> | undefined;

/** The cached busybox OCI layout dir (ref name `busybox`), built on first use. */
export function busyboxLayout(): Promise<string> {
  layoutPromise ??= (async () => {
    const dest = join(CACHE_ROOT, `busybox-oci-${ociArch()}-v1`);
    if (!existsSync(join(dest, 'index.json'))) await buildLayout(dest);
    return dest;
  })();
  return layoutPromise;
}

export interface PushOptions {
  /** Push to this host:port instead of `registry.host` (e.g. a fault proxy in front of it). */
  host?: string;
}

/** Pushes the busybox image to `<host>/<repo>:<tag>` and returns its manifest digest. */
export async function pushBusyboxImage(
  registry: TestRegistry,
  repo: string,
  tag: string,
  opts: PushOptions = {},
): Promise<string> {
  const layout = await busyboxLayout();
  const work = await mkdtemp(join(CACHE_ROOT, 'push-'));
  const digestFile = join(work, 'digest');
  const args = ['--insecure-policy', 'copy', '--dest-tls-verify=false', '--digestfile', digestFile];
  const creds = registryCreds(registry);
  if (creds) args.push('--dest-creds', creds);
  args.push(`oci:${layout}:${LAYOUT_REF}`, `docker://${opts.host ?? registry.host}/${repo}:${tag}`);
  try {
    await execFileP('skopeo', args, { maxBuffer: 64 << 20 });
    const digest = (await readFile(digestFile, 'utf8')).trim();
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
      throw new SetupError('internal', 'TEST_PUSH_DIGEST', `skopeo wrote an unexpected digest "${digest}"`);
    }
    return digest;
  } catch (e) {
    if (e instanceof SetupError) throw e;
    const stderr = (e as { stderr?: string }).stderr ?? String(e);
    throw new SetupError(
      'registry',
      'TEST_PUSH_FAILED',
      `skopeo copy to ${registry.host}/${repo}:${tag} failed`,
      {
        hint: stderr.trim().split('\n').slice(-3).join(' | '),
        cause: e,
      },
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
