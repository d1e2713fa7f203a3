/**
 * Multi-platform builds with real parts: QEMU registered in binfmt_misc (fix-binary flag), busybox
 * bases for amd64, arm64 and arm/v7 from Debian packages pushed as one index, the real CLI, the
 * test registry, and skopeo + umoci reading what kiln pushed and wrote.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kiln } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { ensureQemuBinfmt } from '../helpers/binfmt.ts';
import { opensslP256 } from '../helpers/openssl-key.ts';
import { pushMultiPlatformBusybox, type TestPlatform } from '../helpers/foreign-images.ts';
import type { InspectReport } from '../../src/inspect/report.ts';

const execFileP = promisify(execFile);
const PLATFORMS: TestPlatform[] = [
  { architecture: 'amd64' },
  { architecture: 'arm64' },
  { architecture: 'arm', variant: 'v7' },
];
const UNAME: Record<string, string> = { amd64: 'x86_64', arm64: 'aarch64', arm: 'armv7l' };

const isRoot = process.getuid?.() === 0;
const amd64Host = process.arch === 'x64';
const why = !isRoot
  ? 'needs root (binfmt_misc, chroot isolation)'
  : !amd64Host
    ? 'written for an amd64 host'
    : ensureQemuBinfmt(['arm64', 'arm']);

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}
interface IndexDoc {
  mediaType: string;
  manifests: Descriptor[];
}

let work: string;
let reg: TestRegistry;
let ctx: string;

const DOCKERFILE = `FROM --platform=$BUILDPLATFORM BASE AS tools
ARG BUILDPLATFORM
RUN uname -m > /built-on && echo "$BUILDPLATFORM" > /build-platform
FROM BASE
ARG TARGETPLATFORM
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
RUN uname -m > /arch && echo "$TARGETPLATFORM $TARGETOS $TARGETARCH $TARGETVARIANT" > /target
COPY --from=tools /built-on /build-platform /
`;

function build(args: string[], dir = ctx): ReturnType<typeof kiln> {
  return kiln([
    'build',
    '-c',
    dir,
    '--insecure-registry',
    reg.host,
    '--isolation',
    'chroot',
    '--reproducible',
    ...args,
  ]);
}

async function raw(path: string): Promise<{ bytes: Buffer; status: number; type: string }> {
  const res = await fetch(`http://${reg.host}/v2/${path}`, {
    headers: {
      accept: [
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
        'application/vnd.docker.distribution.manifest.v2+json',
      ].join(', '),
    },
  });
  return {
    bytes: Buffer.from(await res.arrayBuffer()),
    status: res.status,
    type: res.headers.get('content-type') ?? '',
  };
}

async function json<T>(path: string): Promise<T> {
  const r = await raw(path);
  assert.equal(r.status, 200, `GET ${path}`);
  return JSON.parse(r.bytes.toString()) as T;
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const plat = (p?: Descriptor['platform']): string =>
  p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : '?';

describe('multi-platform builds', { skip: why }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-multi-'));
    await chmod(work, 0o755);
    reg = await startRegistry();
    await pushMultiPlatformBusybox(reg, 'base/busybox', 'multi', PLATFORMS);
    ctx = join(work, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE.replaceAll('BASE', `${reg.host}/base/busybox:multi`));
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('three platforms, one index', () => {
    let r: Awaited<ReturnType<typeof kiln>>;
    before(async () => {
      r = await build([
        '--platform',
        'linux/amd64,linux/arm64',
        '--custom-platform',
        'linux/arm/v7',
        '-d',
        `${reg.host}/app/multi:1`,
        '-d',
        `${reg.host}/app/multi:also`,
        '--digest-file',
        join(work, 'digest'),
        '--oci-layout-path',
        join(work, 'layout'),
        '--tar-path',
        join(work, 'image.tar'),
      ]);
    });

    test('the build succeeds and the $BUILDPLATFORM stage runs once for all three', () => {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /stages built once for all 3 platforms: tools linux\/amd64/);
      // The summary names each platform's image; stdout is the index digest alone.
      for (const p of ['linux/amd64', 'linux/arm64', 'linux/arm/v7'])
        assert.match(r.stderr, new RegExp(`${p}\\s+sha256:[0-9a-f]{64}`));
      assert.match(r.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
      assert.equal(r.stderr.match(/\] RUN uname -m > \/built-on/g)?.length, 1, r.stderr);
      for (const p of ['linux/amd64', 'linux/arm64', 'linux/arm/v7'])
        assert.match(r.stderr, new RegExp(`\\[stage 2/2 ${p}\\] \\[\\d+/\\d+\\] RUN uname -m > /arch`));
    });

    test('both tags name one OCI index of the three images; the digest file names the index', async () => {
      const one = await raw('app/multi/manifests/1');
      const also = await raw('app/multi/manifests/also');
      assert.equal(one.type, 'application/vnd.oci.image.index.v1+json');
      assert.deepEqual(one.bytes, also.bytes);
      assert.equal(await readFile(join(work, 'digest'), 'utf8'), sha(one.bytes));
      const { stdout } = await execFileP('skopeo', [
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${reg.host}/app/multi:1`,
      ]);
      const index = JSON.parse(stdout) as IndexDoc;
      assert.deepEqual(
        index.manifests.map((m) => plat(m.platform)),
        ['linux/amd64', 'linux/arm64', 'linux/arm/v7'],
      );
    });

    test("each image's /arch, /target and config match its platform; /built-on is the host's", async () => {
      const index = await json<IndexDoc>('app/multi/manifests/1');
      for (const [i, p] of PLATFORMS.entries()) {
        const d = index.manifests[i]!;
        const m = await json<{ config: { digest: string } }>(`app/multi/manifests/${d.digest}`);
        const cfg = await json<{ architecture: string; os: string; variant?: string }>(
          `app/multi/blobs/${m.config.digest}`,
        );
        assert.equal(cfg.architecture, p.architecture);
        assert.equal(cfg.os, 'linux');
        if (p.variant) assert.equal(cfg.variant, p.variant);
        // One image at a time, as skopeo picks it for a platform, unpacked by umoci.
        const oci = join(work, `oci-${i}`);
        await execFileP('skopeo', [
          '--override-arch',
          p.architecture,
          ...(p.variant ? ['--override-variant', p.variant] : []),
          'copy',
          '--src-tls-verify=false',
          `docker://${reg.host}/app/multi:1`,
          `oci:${oci}:x`,
        ]);
        const bundle = join(work, `bundle-${i}`);
        await execFileP('umoci', ['unpack', '--image', `${oci}:x`, bundle], { maxBuffer: 64 << 20 });
        const root = join(bundle, 'rootfs');
        assert.equal((await readFile(join(root, 'arch'), 'utf8')).trim(), UNAME[p.architecture]);
        const platform = ['linux', p.architecture, p.variant].filter(Boolean).join('/');
        assert.equal(
          (await readFile(join(root, 'target'), 'utf8')).trim(),
          `${platform} linux ${p.architecture} ${p.variant ?? ''}`.trim(),
        );
        assert.equal((await readFile(join(root, 'built-on'), 'utf8')).trim(), 'x86_64');
        assert.equal((await readFile(join(root, 'build-platform'), 'utf8')).trim(), 'linux/amd64');
      }
    });

    test('skopeo copy --all takes the index and every image', async () => {
      const all = join(work, 'all');
      await execFileP('skopeo', [
        'copy',
        '--all',
        '--src-tls-verify=false',
        `docker://${reg.host}/app/multi:1`,
        `oci:${all}:x`,
      ]);
      const { stdout } = await execFileP('skopeo', ['inspect', '--raw', `oci:${all}:x`]);
      assert.equal(sha(Buffer.from(stdout)), await readFile(join(work, 'digest'), 'utf8'));
      for (const m of (JSON.parse(stdout) as IndexDoc).manifests)
        assert.ok(existsSync(join(all, 'blobs/sha256', m.digest.slice(7))), m.digest);
    });

    test('--oci-layout-path and --tar-path hold the index and every image', async () => {
      const pushed = (await raw('app/multi/manifests/1')).bytes;
      const layout = join(work, 'layout');
      const { stdout } = await execFileP('skopeo', ['inspect', '--raw', `oci:${layout}:1`]);
      assert.deepEqual(Buffer.from(stdout), pushed);
      const extracted = join(work, 'tar-x');
      await mkdir(extracted);
      await execFileP('tar', ['-xf', join(work, 'image.tar'), '-C', extracted]);
      const fromTar = await execFileP('skopeo', ['inspect', '--raw', `oci:${extracted}:1`]);
      assert.deepEqual(Buffer.from(fromTar.stdout), pushed);
      for (const dir of [layout, extracted])
        for (const i of [0, 1, 2]) {
          const p = PLATFORMS[i]!;
          const oci = join(work, `from-${dir === layout ? 'layout' : 'tar'}-${i}`);
          await execFileP('skopeo', [
            '--override-arch',
            p.architecture,
            ...(p.variant ? ['--override-variant', p.variant] : []),
            'copy',
            `oci:${dir}:1`,
            `oci:${oci}:x`,
          ]);
          const bundle = `${oci}-bundle`;
          await execFileP('umoci', ['unpack', '--image', `${oci}:x`, bundle], { maxBuffer: 64 << 20 });
          assert.equal((await readFile(join(bundle, 'rootfs/arch'), 'utf8')).trim(), UNAME[p.architecture]);
        }
      // docker load's view (manifest.json): the host's image carries the tags.
      const info = await execFileP('skopeo', ['inspect', `docker-archive:${join(work, 'image.tar')}`]);
      assert.equal((JSON.parse(info.stdout) as { Architecture: string }).Architecture, 'amd64');
    });
  });

  test('the layer cache and the tree store keep each platform apart, and a second build hits for all', async () => {
    const cache = join(work, 'cache');
    const args = ['--platform', 'linux/amd64,linux/arm64', '--cache', '--cache-dir', cache];
    const first = await build([...args, '-d', `${reg.host}/app/cached:1`]);
    assert.equal(first.code, 0, first.stderr);
    const second = await build([...args, '-d', `${reg.host}/app/cached:2`]);
    assert.equal(second.code, 0, second.stderr);
    // Every RUN and COPY of both platforms and the shared stage's RUN came from the cache.
    assert.match(second.stderr, /cache:\s+5 hit, 0 miss/);
    assert.match(first.stderr, /cache:\s+0 hit, 5 miss/);
    assert.deepEqual(
      (await raw('app/cached/manifests/2')).bytes,
      (await raw('app/cached/manifests/1')).bytes,
    );
    const index = await json<IndexDoc>('app/cached/manifests/2');
    const arm = await json<{ layers: Descriptor[] }>(`app/cached/manifests/${index.manifests[1]!.digest}`);
    const amd = await json<{ layers: Descriptor[] }>(`app/cached/manifests/${index.manifests[0]!.digest}`);
    // The RUN layers (holding /arch) differ: arm64 never took amd64's cached layer.
    assert.notEqual(arm.layers.at(-2)!.digest, amd.layers.at(-2)!.digest);
    const trees = await readdir(join(cache, 'trees')).catch(() => [] as string[]);
    assert.ok(trees.length > 0, 'the tree store kept trees');
    for (const id of trees) {
      // `files` and its prune mark are the COPY file pool: content from the context, the same for
      // every platform, and linked only after a size/mode/owner check.
      const entries = (await readdir(join(cache, 'trees', id))).filter(
        (e) => !e.startsWith('.') && e !== 'files' && e !== 'files.pruned',
      );
      assert.ok(entries.length > 0, `trees/${id} holds kept trees`);
      for (const e of entries) assert.match(e, /^[0-9a-f]{64}-linux-(amd64|arm64)$/);
    }
  });

  test('kiln warm pulls each platform of an index (and the host one for $BUILDPLATFORM); builds use it offline', async () => {
    const own = await startRegistry();
    try {
      await pushMultiPlatformBusybox(own, 'base/busybox', 'multi', PLATFORMS);
      const dir = join(work, 'warm');
      await mkdir(dir);
      await writeFile(
        join(dir, 'Dockerfile'),
        DOCKERFILE.replaceAll('BASE', `${own.host}/base/busybox:multi`),
      );
      const cache = join(work, 'warm-cache');
      const w = await kiln([
        'warm',
        '--platform',
        'linux/arm64,linux/arm/v7',
        '-d',
        join(dir, 'Dockerfile'),
        '--cache-dir',
        cache,
        '--insecure-registry',
        own.host,
      ]);
      assert.equal(w.code, 0, w.stderr);
      const index = (await (
        await fetch(`http://${own.host}/v2/base/busybox/manifests/multi`, {
          headers: { accept: 'application/vnd.oci.image.index.v1+json' },
        })
      ).json()) as IndexDoc;
      const want = index.manifests
        .map((m) => `${own.host}/base/busybox:multi ${plat(m.platform)} ${m.digest}`)
        .sort();
      assert.deepEqual(
        w.stdout.trim().split('\n').sort(),
        want,
        'amd64 for the $BUILDPLATFORM stage, arm64, arm/v7',
      );
      await own.stop();
      const r = await build(
        [
          '--platform',
          'linux/arm64,linux/arm/v7',
          '--cache-dir',
          cache,
          '--no-push',
          '--oci-layout-path',
          join(work, 'warm-out'),
        ],
        dir,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /using the warmed manifest/);
      const { stdout } = await execFileP('skopeo', [
        'inspect',
        '--raw',
        `oci:${join(work, 'warm-out')}:latest`,
      ]);
      assert.deepEqual(
        (JSON.parse(stdout) as IndexDoc).manifests.map((m) => plat(m.platform)),
        ['linux/arm64', 'linux/arm/v7'],
      );
    } finally {
      await own.stop().catch(() => undefined);
    }
  });

  test('the registry cache repo keeps per-platform entries: a fresh runner hits for every platform', async () => {
    const args = [
      '--platform',
      'linux/amd64,linux/arm64',
      '--cache',
      '--cache-repo',
      `${reg.host}/app/cache`,
    ];
    const first = await build([...args, '-d', `${reg.host}/app/repo-cached:1`]);
    assert.equal(first.code, 0, first.stderr);
    const second = await build([...args, '-d', `${reg.host}/app/repo-cached:2`]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /cache:\s+5 hit, 0 miss/);
    assert.deepEqual(
      (await raw('app/repo-cached/manifests/2')).bytes,
      (await raw('app/repo-cached/manifests/1')).bytes,
    );
  });

  test('--sign signs the index and every platform image (cosign format, verified by openssl)', async () => {
    const { key, pub } = await opensslP256(work, 'sign');
    const r = await build([
      '--platform',
      'linux/amd64,linux/arm64',
      '-d',
      `${reg.host}/app/signed:1`,
      '--sign',
      '--cosign-key',
      key,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const top = await raw('app/signed/manifests/1');
    const index = JSON.parse(top.bytes.toString()) as IndexDoc;
    for (const digest of [sha(top.bytes), ...index.manifests.map((m) => m.digest)]) {
      const sig = await json<{ layers: Array<{ digest: string; annotations: Record<string, string> }> }>(
        `app/signed/manifests/${digest.replace(':', '-')}.sig`,
      );
      const layer = sig.layers[0]!;
      const payload = (await raw(`app/signed/blobs/${layer.digest}`)).bytes;
      const dir = await mkdtemp(join(work, 'v-'));
      await writeFile(join(dir, 'payload'), payload);
      await writeFile(
        join(dir, 'sig'),
        Buffer.from(layer.annotations['dev.cosignproject.cosign/signature']!, 'base64'),
      );
      const v = await execFileP('openssl', [
        'dgst',
        '-sha256',
        '-verify',
        pub,
        '-signature',
        join(dir, 'sig'),
        join(dir, 'payload'),
      ]);
      assert.match(v.stdout, /Verified OK/);
      const doc = JSON.parse(payload.toString()) as {
        critical: { image: { 'docker-manifest-digest': string } };
      };
      assert.equal(doc.critical.image['docker-manifest-digest'], digest);
    }
  });

  describe('SBOM and provenance for each platform of an index, signed', () => {
    const ATT = 'attestation-manifest';
    const TYPE = 'vnd.docker.reference.type';
    const REF = 'vnd.docker.reference.digest';
    const PRED = 'in-toto.io/predicate-type';
    interface Statement {
      subject: { name: string; digest: { sha256: string } }[];
      predicateType: string;
      predicate: Record<string, unknown>;
    }
    let r: Awaited<ReturnType<typeof kiln>>;
    let index: IndexDoc;
    let indexBytes: Buffer;
    const all = (): string => join(work, 'att-all');
    const blobOf = async (digest: string): Promise<Buffer> =>
      readFile(join(all(), 'blobs/sha256', digest.slice(7)));

    before(async () => {
      const dir = join(work, 'att');
      await mkdir(dir);
      // A dpkg status naming the architecture `uname -m` reports: what each platform's SBOM must list.
      await writeFile(
        join(dir, 'Dockerfile'),
        `FROM ${reg.host}/base/busybox:multi\nRUN mkdir -p /var/lib/dpkg && printf 'Package: arch-marker\\nStatus: install ok installed\\nVersion: 1.0\\nArchitecture: %s\\n\\n' "$(uname -m)" > /var/lib/dpkg/status\n`,
      );
      await mkdir(join(work, 'att-out'));
      await opensslP256(work, 'att');
      r = await build(
        [
          '--platform',
          'linux/amd64,linux/arm64',
          '--attest',
          'type=sbom',
          '--attest',
          'type=provenance,mode=max',
          '--sbom-output',
          join(work, 'att-out', 'sbom.spdx.json'),
          '--provenance-output',
          join(work, 'att-out', 'provenance.json'),
          '--sign',
          '--cosign-key',
          join(work, 'att.pem'),
          '-d',
          `${reg.host}/app/attested:1`,
          '--digest-file',
          join(work, 'att-digest'),
        ],
        dir,
      );
      const { stdout } = await execFileP('skopeo', [
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${reg.host}/app/attested:1`,
      ]);
      indexBytes = Buffer.from(stdout);
      index = JSON.parse(stdout) as typeof index;
      await execFileP('skopeo', [
        'copy',
        '--all',
        '--src-tls-verify=false',
        `docker://${reg.host}/app/attested:1`,
        `oci:${all()}:x`,
      ]);
    });

    test('the index holds 2 images, then one attestation manifest each, as BuildKit lays them out', async () => {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        await readFile(join(work, 'att-digest'), 'utf8'),
        sha(indexBytes),
        'digest file = the index',
      );
      assert.equal(r.stdout.trim(), sha(indexBytes));
      const m = index.manifests;
      // The summary puts each platform's attestation manifest beside its image.
      for (const i of [0, 1])
        assert.match(
          r.stderr,
          new RegExp(`${plat(m[i]!.platform)}\\s+${m[i]!.digest}\\s+attestations ${m[i + 2]!.digest}`),
        );
      assert.deepEqual(
        m.map((d) => plat(d.platform)),
        ['linux/amd64', 'linux/arm64', 'unknown/unknown', 'unknown/unknown'],
      );
      for (const d of m.slice(0, 2)) assert.equal(d.annotations?.[TYPE], undefined);
      for (const i of [0, 1]) {
        const att = m[i + 2]!;
        assert.equal(att.mediaType, 'application/vnd.oci.image.manifest.v1+json');
        assert.equal(att.annotations?.[TYPE], ATT);
        assert.equal(att.annotations?.[REF], m[i]!.digest, 'names its own platform image');
        const am = JSON.parse((await blobOf(att.digest)).toString()) as {
          subject: { digest: string };
          layers: { mediaType: string; annotations?: Record<string, string> }[];
        };
        assert.equal(am.subject.digest, m[i]!.digest);
        assert.deepEqual(
          am.layers.map((l) => l.mediaType),
          ['application/vnd.in-toto+json', 'application/vnd.in-toto+json'],
        );
        assert.deepEqual(am.layers.map((l) => l.annotations?.[PRED]).sort(), [
          'https://slsa.dev/provenance/v1',
          'https://spdx.dev/Document',
        ]);
      }
    });

    test("each platform's statements: subject = its image, SBOM lists its own arch, provenance names its platform", async () => {
      const archs: Record<string, string> = { 'linux/amd64': 'x86_64', 'linux/arm64': 'aarch64' };
      for (const i of [0, 1]) {
        const image = index.manifests[i]!;
        const platform = plat(image.platform);
        const am = JSON.parse((await blobOf(index.manifests[i + 2]!.digest)).toString()) as {
          layers: { digest: string; annotations: Record<string, string> }[];
        };
        for (const l of am.layers) {
          const st = JSON.parse((await blobOf(l.digest)).toString()) as Statement;
          assert.equal(st.predicateType, l.annotations[PRED]);
          assert.equal(`sha256:${st.subject[0]!.digest.sha256}`, image.digest);
          assert.match(
            st.subject[0]!.name,
            new RegExp(`^pkg:docker/.*app/attested@1\\?platform=${encodeURIComponent(platform)}$`),
          );
          if (st.predicateType === 'https://spdx.dev/Document') {
            const pkgs = (
              st.predicate.packages as {
                name: string;
                versionInfo?: string;
                externalRefs?: { referenceLocator: string }[];
              }[]
            ).filter((p) => p.name === 'arch-marker');
            assert.equal(pkgs.length, 1, JSON.stringify(st.predicate.packages));
            const purl = pkgs[0]!.externalRefs?.map((e) => e.referenceLocator).join(' ') ?? '';
            assert.match(purl, new RegExp(`arch=${archs[platform]}`), `${platform}: ${purl}`);
          } else {
            const def = st.predicate.buildDefinition as {
              externalParameters: { request: { platform: string } };
              internalParameters: { buildConfig?: unknown };
            };
            assert.equal(def.externalParameters.request.platform, platform);
            assert.ok(def.internalParameters.buildConfig, 'mode=max records the steps');
          }
        }
      }
    });

    test('--sbom-output / --provenance-output write one file per platform, the name given holds none', async () => {
      const out = join(work, 'att-out');
      assert.deepEqual((await readdir(out)).sort(), [
        'provenance.linux-amd64.json',
        'provenance.linux-arm64.json',
        'sbom.linux-amd64.spdx.json',
        'sbom.linux-arm64.spdx.json',
      ]);
      const arm = JSON.parse(await readFile(join(out, 'provenance.linux-arm64.json'), 'utf8')) as Statement;
      assert.equal(`sha256:${arm.subject[0]!.digest.sha256}`, index.manifests[1]!.digest);
      const sbom = await readFile(join(out, 'sbom.linux-amd64.spdx.json'), 'utf8');
      assert.match(sbom, /arch=x86_64/);
      assert.doesNotMatch(sbom, /aarch64/);
    });

    test('umoci unpacks each platform image skopeo picks out of the attested index', async () => {
      for (const [arch, uname] of [
        ['amd64', 'x86_64'],
        ['arm64', 'aarch64'],
      ] as const) {
        const oci = join(work, `att-${arch}`);
        await execFileP('skopeo', [
          '--override-arch',
          arch,
          'copy',
          '--src-tls-verify=false',
          `docker://${reg.host}/app/attested:1`,
          `oci:${oci}:x`,
        ]);
        const bundle = `${oci}-bundle`;
        await execFileP('umoci', ['unpack', '--image', `${oci}:x`, bundle], { maxBuffer: 64 << 20 });
        assert.match(
          await readFile(join(bundle, 'rootfs/var/lib/dpkg/status'), 'utf8'),
          new RegExp(`Architecture: ${uname}`),
        );
      }
    });

    test('kiln inspect summarises both platforms; the index, images and attestation manifests are signed', async () => {
      const j = await kiln([
        'inspect',
        `${reg.host}/app/attested:1`,
        '--insecure-registry',
        reg.host,
        '--key',
        join(work, 'att.pub'),
        '--format',
        'json',
      ]);
      assert.equal(j.code, 0, j.stderr);
      const rep = JSON.parse(j.stdout) as InspectReport;
      assert.equal(rep.digest, sha(indexBytes));
      assert.deepEqual(
        rep.manifests.map((m) => m.platform),
        ['linux/amd64', 'linux/arm64'],
      );
      assert.deepEqual(
        rep.attestations.map((a) => [a.platform, a.subject]),
        [
          ['linux/amd64', index.manifests[0]!.digest],
          ['linux/arm64', index.manifests[1]!.digest],
        ],
      );
      for (const a of rep.attestations) {
        assert.deepEqual([...a.sources].sort(), ['index', 'referrers-tag']);
        const prov = a.statements.find((s) => s.provenance)?.provenance;
        assert.equal(prov?.platform, a.platform);
        assert.equal(a.statements.find((s) => s.sbom)?.sbom?.packages, 1);
      }
      const signed = rep.signatures
        .filter((s) => s.status === 'key')
        .map((s) => s.subject)
        .sort();
      assert.deepEqual(
        signed,
        index.manifests
          .map((m) => m.digest)
          .concat(sha(indexBytes))
          .sort(),
      );
      assert.deepEqual(rep.unsigned, []);
      const text = await kiln(['inspect', `${reg.host}/app/attested:1`, '--insecure-registry', reg.host]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /for sha256:[0-9a-f]{12} linux\/amd64 \(found in index and referrers-tag\)/);
      assert.match(text.stdout, /for sha256:[0-9a-f]{12} linux\/arm64 \(found in index and referrers-tag\)/);
      assert.match(text.stdout, /builder .*, platform linux\/arm64/);
    });

    // Last: it pushes the same tag again.
    test('--reproducible: a second build pushes the same index digest, attestations included', async () => {
      const again = await build(
        [
          '--platform',
          'linux/amd64,linux/arm64',
          '--attest',
          'type=sbom',
          '--attest',
          'type=provenance,mode=max',
          '-d',
          `${reg.host}/app/attested:1`,
        ],
        join(work, 'att'),
      );
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout.trim(), sha(indexBytes));
    });
  });

  test('one --platform gives one image manifest, the same digest as no --platform at all', async () => {
    const a = await build(['--platform', 'linux/amd64', '-d', `${reg.host}/app/one:a`]);
    assert.equal(a.code, 0, a.stderr);
    const b = await build(['-d', `${reg.host}/app/one:b`]);
    assert.equal(b.code, 0, b.stderr);
    const ma = await raw('app/one/manifests/a');
    const mb = await raw('app/one/manifests/b');
    assert.equal(ma.type, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(ma.bytes, mb.bytes);
  });

  test('--format docker pushes a Docker manifest list', async () => {
    const r = await build([
      '--platform',
      'linux/amd64,linux/arm64',
      '--format',
      'docker',
      '-d',
      `${reg.host}/app/docker:1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const m = await raw('app/docker/manifests/1');
    assert.equal(m.type, 'application/vnd.docker.distribution.manifest.list.v2+json');
    const list = JSON.parse(m.bytes.toString()) as IndexDoc;
    assert.deepEqual(
      list.manifests.map((d) => [d.mediaType, plat(d.platform)]),
      [
        ['application/vnd.docker.distribution.manifest.v2+json', 'linux/amd64'],
        ['application/vnd.docker.distribution.manifest.v2+json', 'linux/arm64'],
      ],
    );
  });

  test('one platform failing fails the build and pushes nothing', async () => {
    const dir = join(work, 'fail');
    await mkdir(dir);
    await writeFile(
      join(dir, 'Dockerfile'),
      `FROM ${reg.host}/base/busybox:multi\nRUN echo ok > /ok\nRUN [ "$(uname -m)" != aarch64 ]\n`,
    );
    const r = await build(['--platform', 'linux/amd64,linux/arm64', '-d', `${reg.host}/app/fail:1`], dir);
    assert.equal(r.code, 7, r.stderr);
    assert.equal((await raw('app/fail/manifests/1')).status, 404);
    assert.equal((await raw('app/fail/tags/list')).status, 404, 'no manifest of any platform was pushed');
  });

  test('kiln probe says arm64 and arm/v7 RUN through binfmt_misc, and fails for a platform named that cannot', async () => {
    const ok = await kiln([
      'probe',
      '--platform',
      'linux/arm64,linux/arm/v7',
      '--work-dir',
      join(work, 'probe'),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /RUN for linux\/arm64\s+ok\s+binfmt_misc qemu-aarch64 \(.*flags \w*F/);
    assert.match(ok.stdout, /RUN for linux\/arm\/v7\s+ok\s+binfmt_misc qemu-arm /);
    if (existsSync('/proc/sys/fs/binfmt_misc/qemu-s390x')) return;
    const bad = await kiln(['probe', '--platform', 'linux/s390x', '--work-dir', join(work, 'probe')]);
    assert.equal(bad.code, 6);
    assert.match(bad.stdout, /RUN for linux\/s390x\s+FAIL\s+no enabled binfmt_misc entry/);
  });

  test('a RUN for a platform that cannot execute here fails before the build; COPY-only needs none', async (t) => {
    if (existsSync('/proc/sys/fs/binfmt_misc/qemu-s390x')) return t.skip('s390x is registered here');
    const dir = join(work, 's390x');
    await mkdir(dir);
    await writeFile(join(dir, 'f'), 'x');
    await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY f /f\n');
    const ok = await build(['--platform', 'linux/s390x', '--no-push'], dir);
    assert.equal(ok.code, 0, ok.stderr);
    await writeFile(join(dir, 'Dockerfile'), `FROM ${reg.host}/base/busybox:multi\nRUN true\n`);
    const bad = await build(['--platform', 'linux/amd64,linux/s390x', '--no-push'], dir);
    assert.equal(bad.code, 6, bad.stderr);
    assert.match(bad.stderr, /Dockerfile:2: RUN steps for linux\/s390x cannot execute/);
    assert.doesNotMatch(bad.stderr, /FROM .*busybox/, 'nothing was pulled');
  });
});
