/**
 * Attestations with file outputs: kiln pushes them with the image (BuildKit's index) but does not
 * write them into --tar-path or --oci-layout-path, and says so with a warning naming both flags
 * and where the attestations went; --sbom-output / --provenance-output still write them. Checked
 * on the files themselves: the layout's index.json and the tarball's manifest.json name the image
 * manifest alone, while the registry tag names the index with the attestation manifest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kiln } from '../helpers/cli.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import type { Index } from '../../src/image/types.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json';

describe('attestations and file outputs', { skip: !isRoot && 'needs root', timeout: 5 * 60_000 }, () => {
  let reg: TestRegistry;
  let work: string;
  let ctx: string;

  before(async () => {
    reg = await startRegistry();
    await pushBusyboxImage(reg, 'base/busybox', '1');
    work = await mkdtemp(join(tmpdir(), 'kiln-attest-out-'));
    await chmod(work, 0o755);
    ctx = join(work, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${reg.host}/base/busybox:1\nRUN echo out > /o\n`);
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const build = (name: string, flags: string[]) =>
    kiln([
      'build',
      '--context',
      ctx,
      '--destination',
      `${reg.host}/out/${name}:1`,
      '--insecure-registry',
      reg.host,
      '--work-dir',
      join(work, 'kw'),
      '--attestation',
      'max',
      '--oci-layout-path',
      join(work, `${name}-layout`),
      '--tar-path',
      join(work, `${name}.tar`),
      ...flags,
    ]);

  async function fileOutputsHoldTheImageAlone(name: string, image: string): Promise<void> {
    const index = JSON.parse(await readFile(join(work, `${name}-layout`, 'index.json'), 'utf8')) as Index;
    assert.deepEqual(
      index.manifests.map((d) => [d.digest, d.mediaType]),
      [[image, 'application/vnd.oci.image.manifest.v1+json']],
    );
    const { stdout } = await execFileP('tar', ['-xOf', join(work, `${name}.tar`), 'manifest.json']);
    const tarManifest = JSON.parse(stdout) as Array<{ Layers: string[] }>;
    assert.equal(tarManifest.length, 1, 'one image in the tarball');
  }

  test('pushing: a warning naming both outputs, the registry holds the attestations, the files do not', async () => {
    const r = await build('pushed', []);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(
      r.stderr,
      /attestations are pushed with the image only: --tar-path and --oci-layout-path hold the image alone/,
    );
    const tagged = (await (
      await fetch(`${reg.url}/v2/out/pushed/manifests/1`, { headers: { accept: ACCEPT } })
    ).json()) as Index;
    assert.equal(tagged.manifests.length, 2);
    assert.equal(tagged.manifests[1]!.annotations!['vnd.docker.reference.type'], 'attestation-manifest');
    await fileOutputsHoldTheImageAlone('pushed', tagged.manifests[0]!.digest);
  });

  test('--no-push: the warning says they are not pushed; --sbom-output still writes the SBOM', async () => {
    const sbom = join(work, 'sbom.json');
    const r = await build('local', ['--no-push', '--sbom-output', sbom]);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(
      r.stderr,
      /attestations are not pushed \(no push\): --tar-path and --oci-layout-path hold the image alone/,
    );
    const doc = JSON.parse(await readFile(sbom, 'utf8')) as { spdxVersion: string };
    assert.equal(doc.spdxVersion, 'SPDX-2.3');
    const image = r.stdout.trim();
    await fileOutputsHoldTheImageAlone('local', image);
    const tags = await fetch(`${reg.url}/v2/out/local/tags/list`);
    assert.equal(tags.status, 404, 'nothing pushed');
  });
});
