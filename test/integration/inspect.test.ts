/**
 * `kiln inspect` against a real Distribution registry, on images kiln built with `--attestation
 * max --sign`: the platform manifest, the SBOM (format, package count equal to the SBOM kiln
 * wrote with --sbom-output), the provenance (subject = the image manifest, builder id, the pulled
 * base as dependency), and signatures verified with --key. Read through the tag's BuildKit
 * index, and through the referrers tag alone when inspecting the image manifest by digest. A
 * wrong key and an unsigned image are errors with --key; the signature checks are cross-checked
 * by altering a stored signature.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kiln, type CliResult } from '../helpers/cli.ts';
import { pushDebianImage } from '../helpers/debian.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import type { InspectReport } from '../../src/inspect/report.ts';
import type { Index, Manifest } from '../../src/image/types.ts';

const isRoot = process.getuid?.() === 0;
const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json';

const LOCK = {
  name: 'app',
  lockfileVersion: 3,
  packages: {
    '': { name: 'app', version: '1.0.0' },
    'node_modules/left-pad': { version: '1.3.0', license: 'WTFPL' },
    'node_modules/ms': { version: '2.1.3', license: 'MIT' },
  },
};

describe('kiln inspect', { skip: !isRoot && 'needs root', timeout: 10 * 60_000 }, () => {
  let reg: TestRegistry;
  let work: string;
  let ctx: string;
  let baseDigest: string;
  let digest: string;

  const inspect = (ref: string, flags: string[] = []): Promise<CliResult> =>
    kiln(['inspect', ref, '--insecure-registry', reg.host, ...flags]);

  const json = (r: CliResult): InspectReport => {
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    return JSON.parse(r.stdout) as InspectReport;
  };

  async function build(repo: string, flags: string[]): Promise<string> {
    const r = await kiln([
      'build',
      '--context',
      ctx,
      '--destination',
      `${reg.host}/${repo}:1`,
      '--insecure-registry',
      reg.host,
      '--work-dir',
      join(work, 'kw'),
      ...flags,
    ]);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    return r.stdout.trim();
  }

  before(async () => {
    reg = await startRegistry();
    baseDigest = await pushDebianImage(reg, 'base/debian', 'bookworm');
    work = await mkdtemp(join(tmpdir(), 'kiln-inspect-'));
    await chmod(work, 0o755);
    ctx = join(work, 'ctx');
    await mkdir(join(ctx, 'app'), { recursive: true });
    await writeFile(join(ctx, 'app', 'package-lock.json'), JSON.stringify(LOCK));
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${reg.host}/base/debian:bookworm\nCOPY app/ /srv/app/\n`);
    for (const name of ['sign', 'other']) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      await writeFile(join(work, `${name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
      await writeFile(join(work, `${name}.pub`), publicKey.export({ type: 'spki', format: 'pem' }));
    }
    digest = await build('i/app', [
      '--attestation',
      'max',
      '--sign',
      '--cosign-key',
      join(work, 'sign.key'),
      '--sbom-output',
      join(work, 'sbom.json'),
      '--provenance-output',
      join(work, 'prov.json'),
    ]);
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function registryIndex(repo: string): Promise<Index> {
    const r = await fetch(`${reg.url}/v2/${repo}/manifests/1`, { headers: { accept: ACCEPT } });
    return (await r.json()) as Index;
  }

  test('by tag: the platform manifest, SBOM, provenance and three signatures verified with --key', async () => {
    const report = json(
      await inspect(`${reg.host}/i/app:1`, ['--format', 'json', '--key', join(work, 'sign.pub')]),
    );
    const index = await registryIndex('i/app');
    const image = index.manifests[0]!.digest;
    const attestation = index.manifests[1]!.digest;
    assert.equal(report.digest, digest);
    assert.deepEqual(
      report.manifests.map((m) => [m.digest, m.platform]),
      [[image, `linux/${index.manifests[0]!.platform!.architecture}`]],
    );
    assert.equal(report.attestations.length, 1);
    const att = report.attestations[0]!;
    assert.equal(att.manifest, attestation);
    assert.equal(att.subject, image);
    // Found in the tag's index (BuildKit's layout) and listed under the referrers tag too.
    assert.deepEqual(att.sources, ['index', 'referrers-tag']);

    const written = JSON.parse(await readFile(join(work, 'sbom.json'), 'utf8')) as {
      spdxVersion: string;
      documentDescribes: string[];
      packages: Array<{ SPDXID: string; name: string }>;
    };
    const expected = written.packages.filter((p) => !written.documentDescribes.includes(p.SPDXID));
    assert.ok(expected.some((p) => p.name === 'ms') && expected.some((p) => p.name === 'base-files'));
    const sbom = att.statements.find((s) => s.sbom)!;
    assert.deepEqual(sbom.sbom, {
      format: 'spdx',
      version: 'SPDX-2.3',
      packages: expected.length,
      creator: sbom.sbom!.creator,
    });
    assert.match(sbom.sbom!.creator!, /^Tool: kiln-/);
    assert.deepEqual(
      sbom.subjects.map((s) => s.digest),
      [image],
    );

    const prov = att.statements.find((s) => s.provenance)!;
    const wrote = JSON.parse(await readFile(join(work, 'prov.json'), 'utf8')) as {
      predicate: { runDetails: { builder: { id: string } } };
    };
    assert.equal(prov.predicateType, 'https://slsa.dev/provenance/v1');
    assert.equal(prov.provenance!.builderId, wrote.predicate.runDetails.builder.id);
    assert.deepEqual(
      prov.subjects.map((s) => s.digest),
      [image],
    );
    assert.ok(
      prov.provenance!.dependencies.some((d) => d.endsWith(`@${baseDigest}`)),
      prov.provenance!.dependencies.join(' '),
    );

    assert.deepEqual(
      report.signatures.map((s) => [s.subject, s.status, s.payloadMatches, s.keyless]),
      [digest, image, attestation].map((d) => [d, 'key', true, false]),
    );
    assert.deepEqual(report.unsigned, []);
  });

  test('by image digest: attestations through the referrers tag alone; text output', async () => {
    const image = (await registryIndex('i/app')).manifests[0]!.digest;
    const r = await inspect(`${reg.host}/i/app@${image}`, ['--key', join(work, 'sign.pub')]);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.match(r.stdout, /found in referrers-tag\)/);
    assert.doesNotMatch(r.stdout, /found in index/);
    assert.match(r.stdout, /SBOM spdx SPDX-2\.3: \d+ packages/);
    assert.match(r.stdout, /provenance https:\/\/slsa\.dev\/provenance\/v1: builder /);
    assert.match(r.stdout, new RegExp(`${image.slice(0, 19)}: verified with --key`));
    const report = json(await inspect(`${reg.host}/i/app@${image}`, ['--format', 'json']));
    assert.deepEqual(report.attestations[0]!.sources, ['referrers-tag']);
    // Without --key a key-based signature is reported present, not verified.
    assert.deepEqual(
      report.signatures.map((s) => s.status),
      ['unchecked', 'unchecked'],
    );
  });

  test('the wrong key: exit 5 (SIGNATURE_INVALID), every signature reported failed', async () => {
    const r = await inspect(`${reg.host}/i/app:1`, ['--format', 'json', '--key', join(work, 'other.pub')]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /SIGNATURE_INVALID|do not verify/);
    const report = JSON.parse(r.stdout) as InspectReport;
    assert.deepEqual(
      report.signatures.map((s) => s.status),
      ['failed', 'failed', 'failed'],
    );
  });

  test('an altered signature is caught without --key too when the payload no longer names the image', async () => {
    // Re-push the image's .sig with the index's payload: a signature valid for another digest.
    const index = await registryIndex('i/app');
    const image = index.manifests[0]!.digest;
    const get = (p: string) => fetch(`${reg.url}/v2/i/app/${p}`, { headers: { accept: ACCEPT } });
    const indexSig = (await (await get(`manifests/${digest.replace(':', '-')}.sig`)).json()) as Manifest;
    const put = await fetch(`${reg.url}/v2/i/app/manifests/${image.replace(':', '-')}.sig`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: JSON.stringify(indexSig),
    });
    assert.equal(put.status, 201);
    const r = await inspect(`${reg.host}/i/app:1`, ['--format', 'json', '--key', join(work, 'sign.pub')]);
    assert.equal(r.code, 5, r.stderr);
    const report = JSON.parse(r.stdout) as InspectReport;
    const bad = report.signatures.find((s) => s.subject === image)!;
    assert.equal(bad.status, 'failed');
    assert.equal(bad.payloadMatches, false);
    assert.ok(report.signatures.filter((s) => s.subject !== image).every((s) => s.status === 'key'));
  });

  test('an unsigned image without attestations: nothing attached; --key is an error', async () => {
    const plain = await build('i/plain', []);
    const report = json(await inspect(`${reg.host}/i/plain:1`, ['--format', 'json']));
    assert.equal(report.digest, plain);
    assert.equal(report.manifests.length, 1);
    assert.deepEqual(report.attestations, []);
    assert.deepEqual(report.signatures, []);
    assert.deepEqual(report.unsigned, [plain]);
    const r = await inspect(`${reg.host}/i/plain:1`, ['--key', join(work, 'sign.pub')]);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /no signature .* verifies with --key/);
  });

  test('CycloneDX SBOM summarised from the attestation', async () => {
    await build('i/cdx', ['--attest', 'type=sbom,format=cyclonedx']);
    const report = json(await inspect(`${reg.host}/i/cdx:1`, ['--format', 'json']));
    const sbom = report.attestations[0]!.statements[0]!.sbom!;
    assert.equal(sbom.format, 'cyclonedx');
    assert.match(sbom.version, /^1\.\d+$/);
    assert.ok(sbom.packages > 50, `${sbom.packages} components`);
  });

  test('an image that does not exist: registry error, not an internal one', async () => {
    const r = await inspect(`${reg.host}/i/missing:1`);
    assert.equal(r.code, 5, r.stderr);
  });
});
