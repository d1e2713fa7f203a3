/**
 * A docker/build-push-action step as its README shows them (values of our own), with `uses:`
 * switched to kiln and nothing else changed: docker/metadata-action's outputs (tags, OCI labels,
 * annotations at manifest and index level), build args, secrets in build-push-action's ID=value form
 * (one quoted, with a comma), `platforms: linux/amd64,linux/arm64` on a multi-arch base (arm64's RUN
 * through QEMU binfmt_misc), the gha cache, provenance mode=max and an SBOM. Run twice through
 * @github/local-action against a loopback registry; the assertions read the registry with skopeo:
 * both tags on one index digest, one image per platform with its labels and manifest annotations,
 * the index annotations, one attestation manifest per platform with SPDX and SLSA provenance
 * statements about that platform's image, the secret in no layer, and run 2 served from run 1's cache.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { ensureQemuBinfmt } from '../helpers/binfmt.ts';
import { pushMultiPlatformBusybox } from '../helpers/foreign-images.ts';
import { runLocalAction } from './fixtures/local-action.ts';

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const NPM_TOKEN = 'npm-Tok3n,with-a-comma';
const REVISION = '3f2c9a7be01d4c55a8e6f1b2c3d4e5f60718293a';
const PLATFORMS = ['linux/amd64', 'linux/arm64'];
const why =
  process.arch !== 'x64'
    ? 'written for an amd64 host (arm64 through QEMU)'
    : process.getuid?.() !== 0
      ? 'needs root (binfmt_misc)'
      : ensureQemuBinfmt(['arm64']);

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string };
}
interface Manifest {
  mediaType: string;
  manifests?: Descriptor[];
  layers?: Descriptor[];
  annotations?: Record<string, string>;
}

describe('a build-push-action step with uses: switched to kiln', { timeout: 900_000, skip: why }, () => {
  let reg: TestRegistry;
  let work: string;
  let dist: string;
  let cacheStore: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'kiln-bpa-step-'));
    dist = join(work, 'dist');
    cacheStore = join(work, 'gh-cache');
    mkdirSync(cacheStore);
    await execFileP(process.execPath, [join(ROOT, 'scripts/bundle.mjs'), dist], { cwd: ROOT });
    reg = await startRegistry();
    await pushMultiPlatformBusybox(reg, 'base/busybox', 'latest', [
      { architecture: 'amd64' },
      { architecture: 'arm64' },
    ]);
    const app = join(work, 'webapp');
    mkdirSync(join(app, 'docker'), { recursive: true });
    const tokenHash = createHash('sha256').update(NPM_TOKEN).digest('hex');
    writeFileSync(
      join(app, 'docker', 'Dockerfile'),
      [
        `FROM ${reg.host}/base/busybox:latest`,
        'ARG APP_VERSION=0.0.0',
        // The secret is checked by its hash, so neither the Dockerfile nor the log holds it.
        `RUN --mount=type=secret,id=npm_token test "$(sha256sum < /run/secrets/npm_token | cut -c1-64)" = "${tokenHash}" && echo "$APP_VERSION" > /version`,
        'RUN --mount=type=secret,id=GIT_AUTH_TOKEN test -s /run/secrets/GIT_AUTH_TOKEN && echo git-ok > /git-ok',
        'COPY app.txt /app/app.txt',
        '',
      ].join('\n'),
    );
    writeFileSync(join(app, 'app.txt'), 'webapp\n');
  });
  after(async () => {
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** What docker/metadata-action@v5 gives for a push to main (images: <reg>/acme/webapp, type=ref,event=branch + type=sha). */
  function metadataOutputs(image: string): { tags: string; labels: string; annotations: string } {
    const oci: [string, string][] = [
      ['created', '2026-12-02T10:00:00.000Z'],
      ['description', 'kiln drop-in test'],
      ['licenses', 'MIT'],
      ['revision', REVISION],
      ['source', 'https://github.com/acme/webapp'],
      ['title', 'webapp'],
      ['url', 'https://github.com/acme/webapp'],
      ['version', 'main'],
    ];
    const kv = oci.map(([k, v]) => `org.opencontainers.image.${k}=${v}`);
    return {
      tags: `${image}:main\n${image}:sha-${REVISION.slice(0, 7)}`,
      labels: kv.join('\n'),
      annotations: [...kv.map((a) => `manifest:${a}`), ...kv.map((a) => `index:${a}`)].join('\n'),
    };
  }

  const inspectRaw = async (ref: string): Promise<Manifest> => {
    const { stdout } = await execFileP('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--raw',
      `docker://${ref}`,
    ]);
    return JSON.parse(stdout) as Manifest;
  };
  const blob = async (repo: string, digest: string): Promise<Buffer> => {
    const res = await fetch(`http://${reg.host}/v2/${repo}/blobs/${digest}`);
    assert.equal(res.status, 200, `blob ${digest}`);
    return Buffer.from(await res.arrayBuffer());
  };

  test('run 1 pushes what the step asks for; run 2 restores the gha cache and hits it', async () => {
    const image = `${reg.host}/acme/webapp`;
    const meta = metadataOutputs(image);
    const step = {
      context: join(work, 'webapp'),
      file: join(work, 'webapp', 'docker', 'Dockerfile'),
      platforms: PLATFORMS.join(','),
      push: 'true',
      tags: meta.tags,
      labels: meta.labels,
      annotations: meta.annotations,
      'build-args': 'APP_VERSION=2.4.1',
      secrets: `"npm_token=${NPM_TOKEN}"\nGIT_AUTH_TOKEN=ghs_notarealtoken0123`,
      'cache-from': 'type=gha',
      'cache-to': 'type=gha,mode=max',
      provenance: 'mode=max',
      sbom: 'true',
      'insecure-registries': reg.host,
    };
    // A hosted runner's RUNNER_TEMP is the same path in every job, emptied between jobs.
    const runnerTemp = join(work, 'runner-temp');
    mkdirSync(runnerTemp);
    const env = { RUNNER_TEMP: runnerTemp };
    const r1 = await runLocalAction({ work, dist, cacheStore, name: 'bpa-1', inputs: step, env });
    assert.equal(r1.code, 0, r1.out);
    assert.deepEqual(r1.errors, [], r1.out);
    assert.ok(
      !r1.out.includes(NPM_TOKEN) && !r1.out.includes('ghs_notarealtoken0123'),
      'secrets never in the log',
    );
    assert.ok(!r1.warnings.some((w) => /provenance|sbom/.test(w)), r1.warnings.join('\n'));
    const digest = r1.outputs.digest!;
    assert.match(digest, /^sha256:[a-f0-9]{64}$/, r1.out);

    // Both metadata-action tags name the pushed digest.
    for (const tag of ['main', `sha-${REVISION.slice(0, 7)}`]) {
      const { stdout } = await execFileP('skopeo', [
        'inspect',
        '--tls-verify=false',
        '--format',
        '{{.Digest}}',
        `docker://${image}:${tag}`,
      ]);
      assert.equal(stdout.trim(), digest, `tag ${tag}`);
    }
    // The tag names an index: each platform's image, then one attestation manifest for each.
    const index = await inspectRaw(`${image}:main`);
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    const imgs = index.manifests!.filter((m) => !m.annotations?.['vnd.docker.reference.type']);
    const atts = index.manifests!.filter(
      (m) => m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest',
    );
    assert.deepEqual(
      imgs.map((m) => `${m.platform?.os}/${m.platform?.architecture}`),
      PLATFORMS,
      JSON.stringify(index),
    );
    assert.equal(index.manifests!.length, 4, JSON.stringify(index));
    assert.deepEqual(
      atts.map((a) => [a.platform, a.annotations?.['vnd.docker.reference.digest']]),
      imgs.map((m) => [{ architecture: 'unknown', os: 'unknown' }, m.digest]),
    );
    const meta1 = JSON.parse(r1.outputs.metadata!) as Record<string, unknown>;
    assert.equal(meta1['containerimage.digest'], digest);
    assert.equal((meta1['containerimage.descriptor'] as Descriptor).mediaType, index.mediaType);
    // Each platform's attestation manifest in metadata's kiln.platforms; attestation-digest (one
    // image's) stays empty for an index.
    const kilnPlatforms = meta1['kiln.platforms'] as {
      platform: string;
      attestations?: { manifest?: string };
    }[];
    assert.deepEqual(
      kilnPlatforms.map((p) => [p.platform, p.attestations?.manifest]),
      imgs.map((_, i) => [PLATFORMS[i], atts[i]!.digest]),
    );
    assert.equal(r1.outputs['attestation-digest'] ?? '', '');
    // index: annotations on the index, as metadata-action asks.
    assert.equal(index.annotations?.['org.opencontainers.image.title'], 'webapp');
    assert.equal(index.annotations?.['org.opencontainers.image.revision'], REVISION);

    for (const [i, img] of imgs.entries()) {
      const platform = PLATFORMS[i]!;
      // manifest: annotations on each platform's image manifest; labels in its config.
      const manifest = await inspectRaw(`${image}@${img.digest}`);
      assert.equal(manifest.annotations?.['org.opencontainers.image.title'], 'webapp');
      assert.equal(manifest.annotations?.['org.opencontainers.image.revision'], REVISION);
      const { stdout: cfgText } = await execFileP('skopeo', [
        'inspect',
        '--tls-verify=false',
        '--config',
        `docker://${image}@${img.digest}`,
      ]);
      const cfg = JSON.parse(cfgText) as { architecture: string; config: { Labels: Record<string, string> } };
      assert.equal(`linux/${cfg.architecture}`, platform);
      assert.equal(cfg.config.Labels['org.opencontainers.image.source'], 'https://github.com/acme/webapp');
      assert.equal(cfg.config.Labels['org.opencontainers.image.version'], 'main');

      // This platform's attestations: an SPDX SBOM and SLSA provenance v1 (mode=max) about its
      // image, neither holding a secret.
      const am = await inspectRaw(`${image}@${atts[i]!.digest}`);
      const types = am.layers!.map((l) => l.annotations?.['in-toto.io/predicate-type']).sort();
      assert.deepEqual(types, ['https://slsa.dev/provenance/v1', 'https://spdx.dev/Document']);
      for (const l of am.layers!) {
        const text = (await blob('acme/webapp', l.digest)).toString('utf8');
        assert.ok(
          !text.includes(NPM_TOKEN) && !text.includes('ghs_notarealtoken0123'),
          'no secret in an attestation',
        );
        const st = JSON.parse(text) as {
          predicate: Record<string, unknown>;
          subject: { name: string; digest: { sha256: string } }[];
        };
        assert.equal(`sha256:${st.subject[0]!.digest.sha256}`, img.digest);
        assert.ok(
          st.subject[0]!.name.endsWith(`?platform=${encodeURIComponent(platform)}`),
          st.subject[0]!.name,
        );
        if (l.annotations?.['in-toto.io/predicate-type'] === 'https://spdx.dev/Document')
          assert.equal(st.predicate.spdxVersion, 'SPDX-2.3');
        else {
          assert.match(JSON.stringify(st.predicate), /APP_VERSION/, 'mode=max records the build args');
          const def = st.predicate.buildDefinition as {
            externalParameters: { request: { platform: string } };
          };
          assert.equal(def.externalParameters.request.platform, platform);
        }
      }

      // The image: /version from the build arg, /git-ok from the GIT_AUTH_TOKEN secret, no secret in any layer.
      let files = '';
      for (const l of manifest.layers!) {
        const gz = await blob('acme/webapp', l.digest);
        const layerDir = mkdtempSync(join(work, 'layer-'));
        writeFileSync(join(layerDir, 'l.tgz'), gz);
        const { stdout: listing } = await execFileP(
          'sh',
          ['-c', 'tar -xzf l.tgz && tar -tzf l.tgz && cat version git-ok 2>/dev/null; true'],
          { cwd: layerDir },
        );
        files += listing;
        const { stdout: grep } = await execFileP(
          'sh',
          ['-c', `grep -rl -- "$1" . || true`, 'sh', NPM_TOKEN],
          { cwd: layerDir },
        );
        assert.equal(grep.trim(), '', `the secret is in layer ${l.digest}`);
      }
      assert.match(files, /^2\.4\.1$/m, platform);
      assert.match(files, /^git-ok$/m, platform);
      assert.match(files, /app\/app\.txt/, platform);
    }

    // Summary: the two tags, not repo@digest.
    assert.ok(r1.summary.includes(`<code>${image}:main</code>`), r1.summary);
    assert.ok(r1.summary.includes(`<code>${image}:sha-${REVISION.slice(0, 7)}</code>`), r1.summary);
    assert.match(r1.out, /kiln post: cache saved as kiln-buildkit-/, r1.out);

    // Run 2 on a fresh runner (new RUNNER_TEMP): the gha cache restores run 1's layers.
    rmSync(runnerTemp, { recursive: true, force: true });
    mkdirSync(runnerTemp);
    const r2 = await runLocalAction({ work, dist, cacheStore, name: 'bpa-2', inputs: step, env });
    assert.equal(r2.code, 0, r2.out);
    assert.match(r2.out, /kiln cache restored from kiln-buildkit-/, r2.out);
    const steps = (
      JSON.parse(r2.outputs.metadata!) as {
        'kiln.result': { steps: { instruction: string; cache: string }[] };
      }
    )['kiln.result'].steps;
    // Both RUNs of both platforms.
    const runs = steps.filter((s) => s.instruction.startsWith('RUN'));
    assert.equal(runs.length, 4, JSON.stringify(steps));
    assert.ok(
      runs.every((s) => s.cache === 'hit'),
      JSON.stringify(steps),
    );
  });
});
