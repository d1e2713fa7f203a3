/**
 * Attestations end to end through the CLI and a real Distribution registry (which has no referrers
 * API): a debian image with apt-installed packages and a hand-written npm project, built with
 * --attestation max in a GitHub-like environment. The SBOM is checked against dpkg-query run on the
 * pulled image's tree, the provenance against the pushed and pulled digests, the layout against
 * BuildKit's and the referrers tag schema (read by the OCI spec's client rules), and every blob of
 * the registry is searched for the secrets the build had.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kiln, type CliResult } from '../helpers/cli.ts';
import { pushDebianImage } from '../helpers/debian.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { authHeader, registryCreds, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import type { SpdxDocument } from '../../src/attest/spdx.ts';
import type { SlsaProvenanceV1 } from '../../src/attest/provenance.ts';
import type { Statement } from '../../src/attest/statement.ts';
import type { Index, Manifest } from '../../src/image/types.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;

const REGISTRY_PASSWORD = 'attest-registry-pw-5Qx';
const BUILD_SECRET = 'attest-build-secret-Zr8';
const OIDC_LIKE = 'attest-request-token-Kd2';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export async function registryGet(reg: TestRegistry, path: string, accept = ACCEPT): Promise<Response> {
  const auth = await authHeader(reg);
  return fetch(`${reg.url}/v2/${path}`, { headers: { accept, ...(auth ? { authorization: auth } : {}) } });
}

export async function manifestOf<T>(
  reg: TestRegistry,
  repo: string,
  ref: string,
): Promise<{ doc: T; digest: string; bytes: Buffer }> {
  const r = await registryGet(reg, `${repo}/manifests/${ref}`);
  assert.equal(r.status, 200, `GET ${repo}/manifests/${ref}`);
  const bytes = Buffer.from(await r.arrayBuffer());
  return { doc: JSON.parse(bytes.toString()) as T, digest: r.headers.get('docker-content-digest')!, bytes };
}

export async function blobOf(reg: TestRegistry, repo: string, digest: string): Promise<Buffer> {
  const r = await registryGet(reg, `${repo}/blobs/${digest}`, '*/*');
  assert.equal(r.status, 200);
  return Buffer.from(await r.arrayBuffer());
}

/**
 * A referrers client as the OCI distribution spec (v1.1, "Listing Referrers") describes it: the
 * referrers API first; on 404 the referrers tag schema `<alg>-<ref>`, an image index.
 */
export async function referrers(
  reg: TestRegistry,
  repo: string,
  digest: string,
): Promise<{ viaApi: boolean; index: Index }> {
  const api = await registryGet(
    reg,
    `${repo}/referrers/${digest}`,
    'application/vnd.oci.image.index.v1+json',
  );
  if (api.status === 200) return { viaApi: true, index: (await api.json()) as Index };
  assert.equal(api.status, 404, 'a registry without the API answers 404');
  const tag = digest.replace(':', '-');
  const r = await registryGet(reg, `${repo}/manifests/${tag}`, 'application/vnd.oci.image.index.v1+json');
  if (r.status === 404) return { viaApi: false, index: { schemaVersion: 2, manifests: [] } };
  return { viaApi: false, index: (await r.json()) as Index };
}

/** Every file under the registry's storage (blobs and manifests as stored). */
export async function allStoredBytes(root: string): Promise<Array<{ path: string; bytes: Buffer }>> {
  const out: Array<{ path: string; bytes: Buffer }> = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push({ path: p, bytes: await readFile(p) });
    }
  };
  await walk(root);
  return out;
}

/** Searches raw and gzip-decompressed blobs (layers are gzip). */
export async function assertNoSecrets(root: string, secrets: string[]): Promise<number> {
  const { gunzipSync } = await import('node:zlib');
  const files = await allStoredBytes(root);
  for (const f of files) {
    const views = [f.bytes];
    if (f.bytes[0] === 0x1f && f.bytes[1] === 0x8b) views.push(gunzipSync(f.bytes));
    for (const v of views)
      for (const s of secrets) assert.ok(!v.includes(s), `secret ${s.slice(0, 8)}… found in ${f.path}`);
  }
  return files.length;
}

const LOCK = {
  name: 'app',
  version: '1.0.0',
  lockfileVersion: 3,
  requires: true,
  packages: {
    '': { name: 'app', version: '1.0.0', dependencies: { 'left-pad': '^1.3.0', '@scope/util': '2.0.1' } },
    'node_modules/left-pad': { version: '1.3.0', license: 'WTFPL' },
    'node_modules/@scope/util': { version: '2.0.1', license: 'MIT' },
    'node_modules/@scope/util/node_modules/tiny': { version: '0.0.3' },
  },
};

describe(
  'attestations pushed with the image',
  { skip: !isRoot && 'needs root', timeout: 15 * 60_000 },
  () => {
    let reg: TestRegistry;
    let work: string;
    let baseDigest: string;
    let build: CliResult;
    let digest: string;
    const repo = 'attest/app';

    before(async () => {
      reg = await startRegistry({ auth: 'htpasswd', users: { kiln: REGISTRY_PASSWORD } });
      baseDigest = await pushDebianImage(reg, 'base/debian', 'bookworm');
      work = await mkdtemp(join(tmpdir(), 'kiln-attest-'));
      await chmod(work, 0o755);
      const ctx = join(work, 'ctx');
      await mkdir(join(ctx, 'app', 'node_modules', 'left-pad'), { recursive: true });
      await writeFile(join(ctx, 'app', 'package-lock.json'), JSON.stringify(LOCK, null, 2));
      await writeFile(
        join(ctx, 'app', 'node_modules', 'left-pad', 'package.json'),
        JSON.stringify({ name: 'left-pad', version: '1.3.0', license: 'WTFPL' }),
      );
      await writeFile(
        join(ctx, 'Dockerfile'),
        `FROM ${reg.host}/base/debian:bookworm
ARG GREETING=hello
RUN --mount=type=secret,id=tok test "$(sha256sum < /run/secrets/tok | cut -c1-64)" = "${createHash('sha256').update(BUILD_SECRET).digest('hex')}" && \\
    apt-get update -qq && apt-get install -y -qq --no-install-recommends jq >/dev/null && \\
    rm -rf /var/lib/apt/lists/*
COPY app/ /srv/app/
`,
      );
      build = await kiln(
        [
          'build',
          '--context',
          ctx,
          '--destination',
          `${reg.host}/${repo}:1`,
          '--insecure-registry',
          reg.host,
          '--build-arg',
          'GREETING=hi',
          '--secret',
          'id=tok,env=ATTEST_TOK',
          '--attestation',
          'max',
          '--sbom-output',
          join(work, 'sbom.spdx.json'),
          '--provenance-output',
          join(work, 'provenance.json'),
          '--digest-file',
          join(work, 'digest'),
          '--work-dir',
          join(work, 'kw'),
        ],
        {
          ATTEST_TOK: BUILD_SECRET,
          KILN_REGISTRY: reg.host,
          KILN_REGISTRY_USERNAME: 'kiln',
          KILN_REGISTRY_PASSWORD: REGISTRY_PASSWORD,
          GITHUB_ACTIONS: 'true',
          GITHUB_SERVER_URL: 'https://github.com',
          GITHUB_REPOSITORY: 'octo/app',
          GITHUB_WORKFLOW_REF: 'octo/app/.github/workflows/ci.yml@refs/heads/main',
          GITHUB_RUN_ID: '1234',
          GITHUB_RUN_ATTEMPT: '1',
          GITHUB_SHA: 'c'.repeat(40),
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: OIDC_LIKE,
        },
      );
      assert.equal(build.code, 0, build.stderr.slice(-3000));
      digest = build.stdout.trim();
    });

    after(async () => {
      await reg?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    test('the tag names an index: the image and a BuildKit attestation manifest with in-toto layers', async () => {
      const { doc: index, digest: tagDigest } = await manifestOf<Index>(reg, repo, '1');
      assert.equal(tagDigest, digest);
      assert.equal((await readFile(join(work, 'digest'), 'utf8')).trim(), digest);
      assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
      assert.equal(index.manifests.length, 2);
      const [img, att] = index.manifests as [Index['manifests'][0], Index['manifests'][0]];
      assert.equal(img.platform?.os, 'linux');
      assert.deepEqual(att.platform, { architecture: 'unknown', os: 'unknown' });
      assert.equal(att.annotations?.['vnd.docker.reference.type'], 'attestation-manifest');
      assert.equal(att.annotations?.['vnd.docker.reference.digest'], img.digest);
      const { doc: am } = await manifestOf<Manifest>(reg, repo, att.digest);
      assert.equal(am.subject?.digest, img.digest);
      assert.deepEqual(
        am.layers.map((l) => [l.mediaType, l.annotations?.['in-toto.io/predicate-type']]),
        [
          ['application/vnd.in-toto+json', 'https://spdx.dev/Document'],
          ['application/vnd.in-toto+json', 'https://slsa.dev/provenance/v1'],
        ],
      );
      // skopeo (containers/image) still resolves the tag to the host's image.
      const { stdout } = await execFileP('skopeo', [
        'inspect',
        '--tls-verify=false',
        '--creds',
        registryCreds(reg)!,
        `docker://${reg.host}/${repo}:1`,
      ]);
      // Its Digest is the tag's (the index); the platform it picked is the image's, not unknown/unknown.
      const info = JSON.parse(stdout) as {
        Digest: string;
        Os: string;
        Architecture: string;
        Layers: string[];
      };
      assert.equal(info.Digest, digest);
      assert.equal(info.Os, 'linux');
      assert.equal(info.Architecture, img.platform?.architecture);
    });

    test('a referrers client finds the attestation through the tag schema (no referrers API here)', async () => {
      const { doc: index } = await manifestOf<Index>(reg, repo, '1');
      const img = index.manifests[0]!;
      const found = await referrers(reg, repo, img.digest);
      assert.equal(found.viaApi, false);
      assert.deepEqual(
        found.index.manifests.map((d) => d.digest),
        [index.manifests[1]!.digest],
      );
      assert.equal(
        found.index.manifests[0]!.annotations?.['vnd.docker.reference.type'],
        'attestation-manifest',
      );
    });

    test('SPDX lists every package dpkg-query lists in the image and the lockfile packages', async () => {
      const { doc: index } = await manifestOf<Index>(reg, repo, '1');
      const { doc: am } = await manifestOf<Manifest>(reg, repo, index.manifests[1]!.digest);
      const st = JSON.parse(
        (await blobOf(reg, repo, am.layers[0]!.digest)).toString(),
      ) as Statement<SpdxDocument>;
      assert.equal(st.subject[0]!.digest.sha256, index.manifests[0]!.digest.slice(7));
      const spdx = st.predicate;
      assert.deepEqual(JSON.parse(await readFile(join(work, 'sbom.spdx.json'), 'utf8')), spdx);

      // The image's tree, as skopeo + umoci unpack it.
      const oci = join(work, 'oci');
      await execFileP('skopeo', [
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        registryCreds(reg)!,
        `docker://${reg.host}/${repo}:1`,
        `oci:${oci}:x`,
      ]);
      const bundle = join(work, 'bundle');
      await execFileP('umoci', ['unpack', '--image', `${oci}:x`, bundle], { maxBuffer: 64 << 20 });
      const { stdout } = await execFileP('dpkg-query', [
        `--admindir=${join(bundle, 'rootfs', 'var/lib/dpkg')}`,
        '-W',
        '-f',
        '${Package}\t${Version}\n',
      ]);
      const dpkg = stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t') as [string, string]);
      assert.ok(
        dpkg.some(([n]) => n === 'jq'),
        'jq was apt-installed',
      );
      const debs = new Map(
        spdx.packages
          .filter((p) => p.externalRefs?.[0]?.referenceLocator.startsWith('pkg:deb/'))
          .map((p) => [p.name, p.versionInfo]),
      );
      assert.equal(debs.size, dpkg.length);
      for (const [n, v] of dpkg) assert.equal(debs.get(n), v, `${n} ${v}`);
      const npm = spdx.packages.filter((p) => p.externalRefs?.[0]?.referenceLocator.startsWith('pkg:npm/'));
      assert.deepEqual(npm.map((p) => `${p.name}@${p.versionInfo}`).sort(), [
        '@scope/util@2.0.1',
        'left-pad@1.3.0',
        'tiny@0.0.3',
      ]);
    });

    test('provenance: subject = pushed image, dependencies = the pulled base, GitHub run details, max content', async () => {
      const { doc: index } = await manifestOf<Index>(reg, repo, '1');
      const { doc: am } = await manifestOf<Manifest>(reg, repo, index.manifests[1]!.digest);
      const st = JSON.parse(
        (await blobOf(reg, repo, am.layers[1]!.digest)).toString(),
      ) as Statement<SlsaProvenanceV1>;
      assert.equal(st._type, 'https://in-toto.io/Statement/v1');
      assert.equal(st.predicateType, 'https://slsa.dev/provenance/v1');
      assert.equal(`sha256:${st.subject[0]!.digest.sha256}`, index.manifests[0]!.digest);
      assert.equal(
        st.subject[0]!.name,
        `pkg:docker/${reg.host}/${repo}@1?platform=${encodeURIComponent(`linux/${index.manifests[0]!.platform!.architecture}`)}`,
      );
      const p = st.predicate;
      assert.deepEqual(
        p.buildDefinition.resolvedDependencies.map((d) => `sha256:${d.digest.sha256}`),
        [baseDigest],
      );
      assert.match(
        p.buildDefinition.resolvedDependencies[0]!.uri,
        /^pkg:docker\/127\.0\.0\.1:\d+\/base\/debian\?platform=linux%2F/,
      );
      const ext = p.buildDefinition.externalParameters as {
        request: { args: Record<string, string> };
        configSource: { uri: string; digest: { sha1: string } };
        dockerfile: { content: string };
      };
      assert.equal(ext.request.args['build-arg:GREETING'], 'hi');
      assert.deepEqual(ext.configSource.digest, { sha1: 'c'.repeat(40) });
      assert.equal(ext.configSource.uri, 'https://github.com/octo/app.git');
      assert.match(Buffer.from(ext.dockerfile.content, 'base64').toString(), /apt-get install/);
      const steps = (
        p.buildDefinition.internalParameters.buildConfig as { steps: Array<{ instruction: string }> }
      ).steps;
      assert.ok(steps.some((s) => s.instruction.startsWith('COPY app/')));
      assert.equal(p.runDetails.builder.id, 'https://github.com/octo/app/actions/runs/1234');
      assert.equal(
        p.runDetails.metadata.invocationId,
        'https://github.com/octo/app/actions/runs/1234/attempts/1',
      );
      assert.ok(
        Date.parse(p.runDetails.metadata.startedOn!) <= Date.parse(p.runDetails.metadata.finishedOn!),
      );
    });

    test('no secret in any stored blob or manifest, nor in the log', async () => {
      const n = await assertNoSecrets(reg.rootDir, [REGISTRY_PASSWORD, BUILD_SECRET, OIDC_LIKE]);
      assert.ok(n > 8, `${n} files searched`);
      for (const s of [REGISTRY_PASSWORD, BUILD_SECRET, OIDC_LIKE]) assert.ok(!build.stderr.includes(s));
    });
  },
);

describe(
  'attestations on reproducible builds',
  { skip: !isRoot && 'needs root', timeout: 5 * 60_000 },
  () => {
    let reg: TestRegistry;
    let work: string;
    let ctx: string;
    const GITLAB = {
      GITLAB_CI: 'true',
      CI_PROJECT_URL: 'https://gitlab.example/group/app',
      CI_PIPELINE_URL: 'https://gitlab.example/group/app/-/pipelines/7',
      CI_JOB_URL: 'https://gitlab.example/group/app/-/jobs/70',
      CI_COMMIT_SHA: 'd'.repeat(40),
    };

    before(async () => {
      reg = await startRegistry();
      await pushBusyboxImage(reg, 'base/busybox', '1');
      work = await mkdtemp(join(tmpdir(), 'kiln-attest-repro-'));
      await chmod(work, 0o755);
      ctx = join(work, 'ctx');
      await mkdir(ctx);
      await writeFile(join(ctx, 'Dockerfile'), `FROM ${reg.host}/base/busybox:1\nRUN echo hi > /hi\n`);
    });
    after(async () => {
      await reg?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    const run = async (tag: string, flags: string[], env: Record<string, string> = {}): Promise<string> => {
      const r = await kiln(
        [
          'build',
          '--context',
          ctx,
          '--destination',
          `${reg.host}/r/app:${tag}`,
          '--insecure-registry',
          reg.host,
          '--work-dir',
          join(work, 'kw'),
          ...flags,
        ],
        env,
      );
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      return r.stdout.trim();
    };

    test('two --timestamp runs give the same index digest; CycloneDX valid; GitLab run details, no clock time', async () => {
      const flags = [
        '--timestamp',
        '1700000000',
        '--attest',
        'type=sbom,format=cyclonedx',
        '--attest',
        'type=provenance,mode=min',
      ];
      const a = await run('a', flags, GITLAB);
      // Same destination (the tag is part of the subject's name), built again from scratch.
      const b = await run('a', flags, GITLAB);
      assert.equal(a, b);
      const { doc: index } = await manifestOf<Index>(reg, 'r/app', 'a');
      assert.equal(index.manifests.length, 2);
      const { doc: am } = await manifestOf<Manifest>(reg, 'r/app', index.manifests[1]!.digest);
      assert.equal(am.layers[0]!.annotations?.['in-toto.io/predicate-type'], 'https://cyclonedx.org/bom');
      const cdxSt = JSON.parse(
        (await blobOf(reg, 'r/app', am.layers[0]!.digest)).toString(),
      ) as Statement<unknown>;
      const CDX = await import('@cyclonedx/cyclonedx-library');
      const errors = await new CDX.Validation.JsonStrictValidator(CDX.Spec.Version.v1dot6).validate(
        JSON.stringify(cdxSt.predicate),
      );
      assert.equal(errors, null);
      const prov = JSON.parse(
        (await blobOf(reg, 'r/app', am.layers[1]!.digest)).toString(),
      ) as Statement<SlsaProvenanceV1>;
      assert.equal(prov.predicate.runDetails.builder.id, GITLAB.CI_JOB_URL);
      assert.deepEqual(prov.predicate.runDetails.metadata, { invocationId: GITLAB.CI_JOB_URL });
      assert.equal(
        (prov.predicate.buildDefinition.externalParameters as { configSource: { digest: { sha1: string } } })
          .configSource.digest.sha1,
        GITLAB.CI_COMMIT_SHA,
      );
      assert.equal(
        prov.predicate.buildDefinition.internalParameters.buildConfig,
        undefined,
        'min has no steps',
      );
    });

    test('without attestations the tag still names the single image manifest', async () => {
      const d = await run('plain', ['--timestamp', '1700000000']);
      const { doc, digest } = await manifestOf<Manifest>(reg, 'r/app', 'plain');
      assert.equal(digest, d);
      assert.equal(doc.mediaType, 'application/vnd.oci.image.manifest.v1+json');
      const { doc: index } = await manifestOf<Index>(reg, 'r/app', 'a');
      assert.equal(index.manifests[0]!.digest, d, 'attestations leave the image manifest itself unchanged');
      const r = await referrers(reg, 'r/app', d);
      assert.equal(r.index.manifests.length, 1, 'one attestation manifest: the repeated build added none');
    });
  },
);
