/**
 * The main job (`npm run example`): starts a local Distribution registry, makes a busybox base image
 * from Debian's busybox-static, builds example/ with the kiln CLI, pushes it, checks it with skopeo
 * and umoci, and runs it in a chroot as its USER.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry } from '../test/helpers/registry.ts';
import { pushBusyboxImage } from '../test/helpers/images.ts';

function sh(cmd: string, args: string[], opts: { quiet?: boolean } = {}): string {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', opts.quiet ? 'pipe' : 'inherit'],
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr ?? ''}`);
  return r.stdout;
}

const reg = await startRegistry({ auth: 'none' });
const tmp = mkdtempSync(join(tmpdir(), 'kiln-example-'));
try {
  console.log(`registry: ${reg.host}`);
  await pushBusyboxImage(reg, 'base/busybox', 'stable');
  const dest = `${reg.host}/example/greeter:1.0`;
  const digestFile = join(tmp, 'digest');
  const kiln = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'build',
      '--context',
      'example',
      '--build-arg',
      `BASE=${reg.host}/base/busybox:stable`,
      '--build-arg',
      'GREETING=Hello',
      '--destination',
      dest,
      '--insecure-registry',
      reg.host,
      '--digest-file',
      digestFile,
      '--cache-dir',
      join(tmp, 'cache'),
    ],
    { stdio: 'inherit' },
  );
  if (kiln.status !== 0) throw new Error(`kiln build failed with exit code ${kiln.status}`);
  const digest = readFileSync(digestFile, 'utf8');
  const inspected = JSON.parse(
    sh('skopeo', ['inspect', '--tls-verify=false', `docker://${dest}`], { quiet: true }),
  ) as { Digest: string; Layers: string[] };
  if (inspected.Digest !== digest) throw new Error(`skopeo sees ${inspected.Digest}, kiln wrote ${digest}`);
  sh(
    'skopeo',
    ['copy', '--quiet', '--src-tls-verify=false', `docker://${dest}`, `oci:${join(tmp, 'oci')}:x`],
    { quiet: true },
  );
  sh('umoci', ['unpack', '--image', `${join(tmp, 'oci')}:x`, join(tmp, 'bundle')], { quiet: true });
  const rootfs = join(tmp, 'bundle', 'rootfs');
  const out = sh('chroot', ['--userspec=65534:65534', rootfs, '/bin/sh', '/app/greet.sh', 'world']);
  console.log(`\nimage ${dest}@${digest}: ${inspected.Layers.length} layers, verified by skopeo and umoci`);
  console.log(`running it prints: ${out.trim()}`);
  if (out.trim() !== 'Hello, world! (built by kiln)') throw new Error(`unexpected output: ${out}`);
} finally {
  await reg.stop();
  rmSync(tmp, { recursive: true, force: true });
}
