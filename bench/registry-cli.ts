/**
 * kiln's registry client as a small CLI, so the registry benchmark can run it as a child process under
 * GNU time exactly like skopeo:
 *   registry-cli.ts push <oci-layout-dir> <host/repo:tag>   (the layout's first manifest)
 *   registry-cli.ts pull <host/repo:tag> <dest-dir>         (manifest, config and layers as files)
 */
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultRegistryOptions } from '../src/registry/options.ts';
import { RegistryClient } from '../src/registry/client.ts';
import { CredentialStore } from '../src/registry/credentials.ts';
import { parseReference } from '../src/registry/reference.ts';
import type { BuiltImage, LayerBlob } from '../src/image/types.ts';
import type { Descriptor, ImageConfig, Manifest } from '../src/image/types.ts';
import { SetupError } from '../test/helpers/setup-error.ts';

const [cmd, a, b] = process.argv.slice(2);
if ((cmd !== 'push' && cmd !== 'pull') || !a || !b) {
  throw new SetupError(
    'usage',
    'BENCH_USAGE',
    'usage: registry-cli.ts push <layout> <ref> | pull <ref> <dir>',
  );
}
const refText = cmd === 'push' ? b : a;
const ref = parseReference(refText);
const client = new RegistryClient({
  registry: { ...defaultRegistryOptions(), insecureRegistries: [ref.registry] },
  credentials: new CredentialStore({ env: {}, dockerConfigDir: '/nonexistent' }),
});

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

if (cmd === 'push') {
  const layout = a;
  const blob = (d: string): string => join(layout, 'blobs', ...d.split(':'));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const mdesc = index.manifests[0]!;
  const manifestBytes = await readFile(blob(mdesc.digest));
  const manifest = JSON.parse(manifestBytes.toString()) as Manifest;
  const configBytes = await readFile(blob(manifest.config.digest));
  const config = JSON.parse(configBytes.toString()) as ImageConfig;
  const layers: LayerBlob[] = manifest.layers.map((d, i) => ({
    descriptor: d,
    diffId: config.rootfs.diff_ids[i]!,
    path: blob(d.digest),
  }));
  const image: BuiltImage = { config, configBytes, manifest, manifestBytes, digest: mdesc.digest, layers };
  const digest = await client.pushImage(image, [ref], (l) => createReadStream(l.path!));
  process.stdout.write(`${digest}\n`);
} else {
  const dest = b;
  await mkdir(dest, { recursive: true });
  const m = await client.getManifest(ref);
  const manifest = JSON.parse(m.bytes.toString()) as Manifest;
  await writeFile(join(dest, 'manifest.json'), m.bytes);
  const blobs = [manifest.config, ...manifest.layers];
  // As many at once as skopeo (containers/image) downloads by default.
  await pool(blobs, 6, (d) => client.fetchBlob(ref, d, join(dest, d.digest.replace(':', '-'))));
  process.stdout.write(`${m.digest}\n`);
}
await client.close();
