import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { defaultRegistryOptions } from '../../src/registry/options.ts';
import type { RegistryOptions } from '../../src/registry/options.ts';
import { assembleImage } from '../../src/image/assemble.ts';
import { canonicalJson } from '../../src/image/digest.ts';
import { MediaType } from '../../src/image/types.ts';
import type { BuiltImage, Descriptor, LayerBlob, Manifest } from '../../src/image/types.ts';
import { memoryLogger } from '../../src/log/logger.ts';
import { RegistryClient, choosePlatform } from '../../src/registry/client.ts';
import type { RegistryClientOptions } from '../../src/registry/client.ts';
import { parseWwwAuthenticate } from '../../src/registry/auth.ts';
import { CredentialStore } from '../../src/registry/credentials.ts';
import { parseReference } from '../../src/registry/reference.ts';
import { backoffDelay, parseRetryAfter, Transport } from '../../src/registry/transport.ts';
import { KilnError } from '../../src/util/errors.ts';
import { isBlobGet, startFaultProxy } from '../helpers/fault-proxy.ts';
import type { Fault, FaultProxy } from '../helpers/fault-proxy.ts';
import { ociArch, pushBusyboxImage } from '../helpers/images.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { RegistryAuth, TestRegistry } from '../helpers/registry.ts';

const execFileP = promisify(execFile);
const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const ARCH = ociArch();
const HOST_PLATFORM = { os: 'linux', architecture: ARCH };

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'kiln-regclient-'));
  await mkdir(join(scratch, 'docker'), { recursive: true });
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function regOptions(hosts: string[], extra: Partial<RegistryOptions> = {}): RegistryOptions {
  return { ...defaultRegistryOptions(), insecureRegistries: hosts, ...extra };
}

function makeClient(
  hosts: string[],
  creds: Record<string, { username: string; password: string }> = {},
  extra: Partial<RegistryOptions> = {},
  more: Partial<RegistryClientOptions> = {},
): RegistryClient {
  return new RegistryClient({
    registry: regOptions(hosts, extra),
    credentials: new CredentialStore({ explicit: creds, env: {}, dockerConfigDir: join(scratch, 'docker') }),
    baseDelayMs: 5,
    // Small chunks so that a 9 MiB blob exercises several PATCHes (the default is larger).
    chunkSizeBytes: 8 << 20,
    ...more,
  });
}

function credsFor(
  reg: TestRegistry,
  host = reg.host,
): Record<string, { username: string; password: string }> {
  const first = Object.entries(reg.users)[0];
  return reg.auth === 'none' || !first ? {} : { [host]: { username: first[0], password: first[1] } };
}

async function expectKiln(p: Promise<unknown>, code: string): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected KilnError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A gzip layer made with real tar+gzip from a few files. */
async function makeLayer(name: string, files: Record<string, string | Buffer>): Promise<LayerBlob> {
  const dir = join(scratch, `layer-${name}`);
  await mkdir(dir, { recursive: true });
  for (const [p, content] of Object.entries(files)) await writeFile(join(dir, p), content);
  const path = join(scratch, `${name}.tar.gz`);
  await execFileP('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '-C',
    dir,
    '-czf',
    path,
    '.',
  ]);
  const gz = await readFile(path);
  return {
    descriptor: { mediaType: MediaType.OciLayerGzip, digest: sha256(gz), size: gz.length },
    diffId: sha256(gunzipSync(gz)),
    path,
  };
}

async function builtImage(name: string, format: 'oci' | 'docker' = 'oci'): Promise<BuiltImage> {
  const l1 = await makeLayer(`${name}-1`, { 'hello.txt': `hello from ${name}\n` });
  const l2 = await makeLayer(`${name}-2`, { 'data.bin': randomBytes(4096) });
  return assembleImage({
    config: {
      architecture: ARCH,
      os: 'linux',
      config: { Cmd: ['/hello.txt'] },
      rootfs: { type: 'layers', diff_ids: [] },
    },
    layers: [l1, l2],
    format,
  });
}

const openLayer = (layer: LayerBlob): Readable => createReadStream(layer.path!);

async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await execFileP('skopeo', args, { maxBuffer: 32 << 20 });
  return stdout;
}

/** Every tag of `repo` has a manifest whose blobs all exist (HEAD), read with plain fetch on an open registry. */
async function assertNoDanglingManifests(reg: TestRegistry, repo: string): Promise<number> {
  const r = await fetch(`${reg.url}/v2/${repo}/tags/list`);
  if (r.status === 404) return 0;
  const body = (await r.json()) as { tags: string[] | null };
  const tags = body.tags ?? [];
  for (const tag of tags) {
    const m = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, {
      headers: { accept: [MediaType.OciManifest, MediaType.DockerManifest].join(', ') },
    });
    assert.equal(m.status, 200);
    const manifest = (await m.json()) as Manifest;
    for (const d of [manifest.config, ...manifest.layers]) {
      const h = await fetch(`${reg.url}/v2/${repo}/blobs/${d.digest}`, { method: 'HEAD' });
      assert.equal(h.status, 200, `tag ${tag} references missing blob ${d.digest}`);
    }
  }
  return tags.length;
}

describe('parsing helpers', () => {
  test('WWW-Authenticate challenges', () => {
    const cases: [string, { scheme: string; params: Record<string, string> }[]][] = [
      ['Basic realm="kiln-test"', [{ scheme: 'basic', params: { realm: 'kiln-test' } }]],
      [
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
        [
          {
            scheme: 'bearer',
            params: {
              realm: 'https://auth.docker.io/token',
              service: 'registry.docker.io',
              scope: 'repository:library/alpine:pull',
            },
          },
        ],
      ],
      [
        'Bearer realm="r",scope="repository:a:pull,push", Basic realm="b"',
        [
          { scheme: 'bearer', params: { realm: 'r', scope: 'repository:a:pull,push' } },
          { scheme: 'basic', params: { realm: 'b' } },
        ],
      ],
    ];
    for (const [input, want] of cases) assert.deepEqual(parseWwwAuthenticate(input), want, input);
  });

  test('Retry-After seconds and HTTP date', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3000);
    assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });

  test('scheme choice per host and mode', () => {
    const cases: [Partial<RegistryOptions>, string, 'pull' | 'push', 'http' | 'https'][] = [
      [{}, 'ghcr.io', 'pull', 'https'],
      [{}, 'localhost:5000', 'push', 'https'],
      [{ insecureRegistries: ['reg.local:5000'] }, 'reg.local:5000', 'push', 'http'],
      [{ insecureRegistries: ['http://reg.local:5000/'] }, 'reg.local:5000', 'pull', 'http'],
      [{ insecureRegistries: ['reg.local:5000'] }, 'other.local', 'pull', 'https'],
      [{ insecure: true }, 'ghcr.io', 'push', 'http'],
      [{ insecure: true }, 'ghcr.io', 'pull', 'https'], // Kaniko: --insecure is for pushes only
      [{ insecurePull: true }, 'ghcr.io', 'pull', 'http'],
      [{ insecurePull: true }, 'ghcr.io', 'push', 'https'],
    ];
    for (const [opts, host, mode, want] of cases) {
      const t = new Transport({ registry: { ...defaultRegistryOptions(), ...opts } });
      assert.equal(t.scheme(host, mode), want, `${JSON.stringify(opts)} ${host} ${mode}`);
    }
  });

  test('backoff grows exponentially with jitter and is capped', () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const d = backoffDelay(attempt, 100, 2000);
      const exp = Math.min(2000, 100 * 2 ** attempt);
      assert.ok(d >= exp / 2 && d <= exp, `attempt ${attempt}: ${d}`);
    }
  });

  test('platform choice normalises arm64 v8 and arch aliases', () => {
    const d = (p: Descriptor['platform'], n: number): Descriptor => ({
      mediaType: MediaType.OciManifest,
      digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
      size: 1,
      platform: p,
    });
    const index = {
      schemaVersion: 2 as const,
      manifests: [
        d({ os: 'linux', architecture: 'amd64' }, 1),
        d({ os: 'linux', architecture: 'arm64', variant: 'v8' }, 2),
        d({ os: 'linux', architecture: 'arm', variant: 'v6' }, 3),
        d({ os: 'linux', architecture: 'arm', variant: 'v7' }, 4),
      ],
    };
    const cases: [{ os: string; architecture: string; variant?: string }, number | undefined][] = [
      [{ os: 'linux', architecture: 'amd64' }, 0],
      [{ os: 'linux', architecture: 'x86_64' }, 0],
      [{ os: 'linux', architecture: 'arm64' }, 1],
      [{ os: 'linux', architecture: 'arm64', variant: 'v8' }, 1],
      [{ os: 'linux', architecture: 'aarch64', variant: '8' }, 1],
      [{ os: 'linux', architecture: 'arm' }, 3],
      [{ os: 'linux', architecture: 'arm', variant: 'v6' }, 2],
      [{ os: 'windows', architecture: 'amd64' }, undefined],
      [{ os: 'linux', architecture: 's390x' }, undefined],
    ];
    for (const [want, idx] of cases) {
      assert.equal(
        choosePlatform(index, want),
        idx === undefined ? undefined : index.manifests[idx],
        JSON.stringify(want),
      );
    }
  });
});

for (const auth of ['none', 'htpasswd', 'token'] as RegistryAuth[]) {
  describe(`pull from a registry with auth=${auth}`, () => {
    let reg: TestRegistry;
    let digest: string;
    let client: RegistryClient;
    before(async () => {
      reg = await startRegistry({ auth });
      digest = await pushBusyboxImage(reg, 'kiln/busybox', '1');
      client = makeClient([reg.host], credsFor(reg));
    });
    after(async () => {
      await client.close();
      await reg.stop();
    });

    test('manifest by tag and by digest', async () => {
      const byTag = await client.getManifest(parseReference(`${reg.host}/kiln/busybox:1`));
      assert.equal(byTag.digest, digest);
      assert.equal(byTag.mediaType, MediaType.OciManifest);
      const byDigest = await client.getManifest(parseReference(`${reg.host}/kiln/busybox@${digest}`));
      assert.equal(byDigest.digest, digest);
      assert.deepEqual(byDigest.bytes, byTag.bytes);
    });

    test('resolveImage, fetchBlob and openBlob verify content', async () => {
      const ref = parseReference(`${reg.host}/kiln/busybox:1`);
      const img = await client.resolveImage(ref, HOST_PLATFORM);
      assert.equal(img.digest, digest);
      assert.equal(img.config.architecture, ARCH);
      assert.equal(img.config.rootfs.diff_ids.length, 1);
      assert.equal(sha256(img.configBytes), img.manifest.config.digest);
      const layer = img.manifest.layers[0]!;
      const dest = join(scratch, `busybox-${auth}.tgz`);
      await client.fetchBlob(ref, layer, dest);
      const data = await readFile(dest);
      assert.equal(sha256(data), layer.digest);
      assert.equal(sha256(gunzipSync(data)), img.config.rootfs.diff_ids[0]);
      const streamed = await readAll(await client.openBlob(ref, layer));
      assert.deepEqual(streamed, data);
    });

    if (auth === 'token') {
      test('tokens are cached per scope set', async () => {
        const ref = parseReference(`${reg.host}/kiln/busybox:1`);
        await client.getManifest(ref);
        const issued = reg.tokenServer!.issued;
        for (let i = 0; i < 3; i++) await client.getManifest(ref);
        assert.equal(reg.tokenServer!.issued, issued, 'no new token for the same scopes');
      });
    }

    if (auth !== 'none') {
      test('wrong password: UNAUTHORIZED with the registry message and no password', async () => {
        const password = 'not-the-password-42';
        const bad = makeClient([reg.host], { [reg.host]: { username: 'kiln', password } });
        try {
          const e = await expectKiln(
            bad.getManifest(parseReference(`${reg.host}/kiln/busybox:1`)),
            'UNAUTHORIZED',
          );
          assert.ok(!e.message.includes(password), e.message);
          assert.ok(!(e.hint ?? '').includes(password));
          assert.match(e.message, auth === 'token' ? /bad credentials/ : /authentication required/i);
          assert.match(e.message, /kiln/);
        } finally {
          await bad.close();
        }
      });

      test('anonymous: UNAUTHORIZED', async () => {
        const anon = makeClient([reg.host]);
        try {
          await expectKiln(anon.getManifest(parseReference(`${reg.host}/kiln/busybox:1`)), 'UNAUTHORIZED');
        } finally {
          await anon.close();
        }
      });
    }

    test('unknown tag: MANIFEST_UNKNOWN names the reference', async () => {
      const e = await expectKiln(
        client.getManifest(parseReference(`${reg.host}/kiln/busybox:nope`)),
        'MANIFEST_UNKNOWN',
      );
      assert.match(e.message, new RegExp(`${reg.host}/kiln/busybox:nope`));
      assert.match(e.hint ?? '', /tag/);
    });
  });
}

describe('open registry: index, push, mount, mirrors, faults', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let busyDigest: string;
  let client: RegistryClient;
  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    busyDigest = await pushBusyboxImage(reg, 'kiln/busybox', '1');
    client = makeClient([reg.host, proxy.host]);
  });
  after(async () => {
    await client.close();
    await proxy.stop();
    await reg.stop();
  });

  test('multi-platform index: platform choice and PLATFORM_NOT_FOUND', async () => {
    const ref = parseReference(`${reg.host}/kiln/multi:base`);
    const base = await client.resolveImage(parseReference(`${reg.host}/kiln/busybox:1`), HOST_PLATFORM);
    // A second platform manifest: same layer, an arm64 (or amd64) config.
    const otherArch = ARCH === 'arm64' ? 'amd64' : 'arm64';
    const cfg = Buffer.from(canonicalJson({ ...base.config, architecture: otherArch, variant: 'v8' }));
    const cfgDesc = { mediaType: MediaType.OciConfig, digest: sha256(cfg), size: cfg.length };
    assert.equal(await client.pushBlob(ref, cfgDesc, () => Readable.from([cfg])), 'uploaded');
    // The layer lives in kiln/busybox: mount it.
    assert.equal(
      await client.pushBlob(ref, base.manifest.layers[0]!, () => Readable.from([]), {
        mountFrom: 'kiln/busybox',
      }),
      'mounted',
    );
    assert.equal(
      await client.pushBlob(ref, base.manifest.config, () => Readable.from([base.configBytes])),
      'uploaded',
    );
    const other = Buffer.from(canonicalJson({ ...base.manifest, config: cfgDesc }));
    const otherDigest = await client.putManifest(
      { ...ref, tag: undefined, digest: sha256(other) },
      other,
      MediaType.OciManifest,
    );
    await client.putManifest(
      { ...ref, tag: undefined, digest: base.digest },
      base.manifestBytes,
      MediaType.OciManifest,
    );
    const index = Buffer.from(
      canonicalJson({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [
          {
            mediaType: MediaType.OciManifest,
            digest: base.digest,
            size: base.manifestBytes.length,
            platform: { os: 'linux', architecture: ARCH },
          },
          {
            mediaType: MediaType.OciManifest,
            digest: otherDigest,
            size: other.length,
            platform: {
              os: 'linux',
              architecture: otherArch,
              ...(otherArch === 'arm64' ? { variant: 'v8' } : {}),
            },
          },
        ],
      }),
    );
    const multi = parseReference(`${reg.host}/kiln/multi:latest`);
    await client.putManifest(multi, index, MediaType.OciIndex);

    const idx = await client.getManifest(multi);
    assert.equal(idx.mediaType, MediaType.OciIndex);
    const host = await client.resolveImage(multi, HOST_PLATFORM);
    assert.equal(host.digest, base.digest);
    const theOther = await client.resolveImage(multi, { os: 'linux', architecture: otherArch });
    assert.equal(theOther.digest, otherDigest);
    assert.equal(theOther.config.architecture, otherArch);
    if (otherArch === 'arm64') {
      const v8 = await client.resolveImage(multi, { os: 'linux', architecture: 'arm64', variant: 'v8' });
      assert.equal(v8.digest, otherDigest);
    }
    const e = await expectKiln(
      client.resolveImage(multi, { os: 'linux', architecture: 's390x' }),
      'PLATFORM_NOT_FOUND',
    );
    assert.match(e.message, /linux\/s390x/);
    assert.match(e.message, new RegExp(`linux/${ARCH}`));
    assert.match(e.message, new RegExp(`linux/${otherArch}`));
  });

  for (const format of ['oci', 'docker'] as const) {
    test(`push a built ${format} image; skopeo reads and copies it`, async () => {
      const image = await builtImage(`built-${format}`, format);
      const refs = [
        parseReference(`${reg.host}/kiln/built-${format}:v1`),
        parseReference(`${reg.host}/kiln/built-${format}:v2`),
      ];
      const digest = await client.pushImage(image, refs, openLayer);
      assert.equal(digest, image.digest);
      for (const tag of ['v1', 'v2']) {
        const out = JSON.parse(
          await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/kiln/built-${format}:${tag}`]),
        ) as { Digest: string; Layers: string[]; Architecture: string };
        assert.equal(out.Digest, image.digest);
        assert.deepEqual(
          out.Layers,
          image.layers.map((l) => l.descriptor.digest),
        );
        assert.equal(out.Architecture, ARCH);
      }
      const raw = await skopeo([
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${reg.host}/kiln/built-${format}:v1`,
      ]);
      assert.equal(raw, image.manifestBytes.toString('utf8'));
      const dir = join(scratch, `oci-${format}`);
      await skopeo([
        '--insecure-policy',
        'copy',
        '--src-tls-verify=false',
        `docker://${reg.host}/kiln/built-${format}:v1`,
        `oci:${dir}:v1`,
      ]);
      const idx = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
      assert.equal(idx.manifests.length, 1);
      // Pushing again finds every blob present and uploads nothing.
      const before = proxy.log.length;
      const viaProxy = makeClient([proxy.host]);
      try {
        let opened = 0;
        await viaProxy.pushImage(image, [parseReference(`${proxy.host}/kiln/built-${format}:v1`)], (l) => {
          opened++;
          return openLayer(l);
        });
        assert.equal(opened, 0);
        assert.ok(
          !proxy.log.slice(before).some((e) => e.method === 'PATCH' || e.path.includes('/blobs/uploads/')),
        );
      } finally {
        await viaProxy.close();
      }
    });
  }

  test('chunked push of a >8 MiB layer uses PATCH with Content-Range', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 123);
    const desc: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: sha256(data), size: data.length };
    const ref = parseReference(`${proxy.host}/kiln/big:1`);
    const viaProxy = makeClient([proxy.host]);
    const start = proxy.log.length;
    try {
      assert.equal(
        await viaProxy.pushBlob(ref, desc, () =>
          Readable.from([data.subarray(0, 1 << 20), data.subarray(1 << 20)]),
        ),
        'uploaded',
      );
    } finally {
      await viaProxy.close();
    }
    const entries = proxy.log.slice(start);
    const patches = entries.filter((e) => e.method === 'PATCH');
    assert.equal(patches.length, 2, JSON.stringify(entries));
    assert.ok(patches.every((p) => p.status === 202));
    const back = join(scratch, 'big.bin');
    await client.fetchBlob(parseReference(`${reg.host}/kiln/big:1`), desc, back);
    assert.deepEqual(await readFile(back), data);
  });

  test('cross-repo mount: registry answers 201 and the layer is never read', async () => {
    const image = await builtImage('mount-src');
    await client.pushImage(image, [parseReference(`${reg.host}/kiln/mount-src:1`)], openLayer);
    const layers = image.layers.map((l) => ({
      ...l,
      source: { registry: proxy.host, repository: 'kiln/mount-src' },
    }));
    const viaProxy = makeClient([proxy.host]);
    const start = proxy.log.length;
    let opened = 0;
    try {
      await viaProxy.pushImage(
        { ...image, layers },
        [parseReference(`${proxy.host}/kiln/mount-dst:1`)],
        (l) => {
          opened++;
          return openLayer(l);
        },
      );
    } finally {
      await viaProxy.close();
    }
    const mounts = proxy.log.slice(start).filter((e) => e.method === 'POST' && e.path.includes('mount='));
    assert.equal(mounts.length, layers.length);
    assert.ok(
      mounts.every((m) => m.status === 201),
      JSON.stringify(mounts),
    );
    assert.equal(opened, 0);
    assert.equal(await assertNoDanglingManifests(reg, 'kiln/mount-dst'), 1);
  });

  test('docker.io pulls go to the mirror first', async () => {
    await pushBusyboxImage(reg, 'library/busybox', 'mirrored');
    const { logger } = memoryLogger();
    const c = new RegistryClient({
      registry: regOptions([reg.host], { mirrors: [`http://${reg.host}`] }),
      credentials: new CredentialStore({ env: {}, dockerConfigDir: join(scratch, 'docker') }),
      logger,
      baseDelayMs: 5,
    });
    try {
      assert.deepEqual(c.pullHosts(parseReference('busybox')), [reg.host, 'registry-1.docker.io']);
      const m = await c.getManifest(parseReference('busybox:mirrored'));
      assert.equal(m.digest, busyDigest);
    } finally {
      await c.close();
    }
  });

  test('a corrupted manifest is fetched again; corrupted every time, DIGEST_MISMATCH', async () => {
    const ref = parseReference(`${proxy.host}/kiln/busybox@${busyDigest}`);
    const manifestGet = (m: string, p: string): boolean => m === 'GET' && p.includes('/manifests/');
    try {
      proxy.inject({ match: manifestGet, times: 1, fault: 'flip-byte' });
      assert.equal((await client.getManifest(ref)).digest, busyDigest);
      proxy.clear();
      proxy.inject({ match: manifestGet, times: 100, fault: 'flip-byte' });
      const e = await expectKiln(client.getManifest(ref), 'DIGEST_MISMATCH');
      assert.match(e.message, new RegExp(busyDigest));
      proxy.clear();
      // By tag, the registry's Docker-Content-Digest is what the body is checked against.
      proxy.inject({ match: manifestGet, times: 100, fault: 'flip-byte' });
      const t = await expectKiln(
        client.getManifest(parseReference(`${proxy.host}/kiln/busybox:1`)),
        'DIGEST_MISMATCH',
      );
      assert.match(t.hint ?? '', /corrupted in transit/);
    } finally {
      proxy.clear();
    }
  });

  const pullFaults: Fault[] = [
    'drop-mid-body',
    'truncate-body',
    'flip-byte',
    'status-503-retry-after',
    'status-429',
    'reset-before-response',
  ];
  for (const fault of pullFaults) {
    test(`blob pull survives ${fault} x2`, async () => {
      const ref = parseReference(`${proxy.host}/kiln/busybox:1`);
      const img = await client.resolveImage(ref, HOST_PLATFORM);
      const layer = img.manifest.layers[0]!;
      const start = proxy.log.length;
      proxy.inject({ match: isBlobGet, times: 2, fault });
      const t0 = Date.now();
      try {
        const dest = join(scratch, `fault-${fault}.tgz`);
        await client.fetchBlob(ref, layer, dest);
        assert.equal(sha256(await readFile(dest)), layer.digest);
      } finally {
        proxy.clear();
      }
      const faulted = proxy.log.slice(start).filter((e) => e.fault === fault);
      assert.equal(faulted.length, 2);
      if (fault === 'status-503-retry-after') assert.ok(Date.now() - t0 >= 1900, 'Retry-After: 1 honoured');
    });
  }

  test('blob pull fails with DIGEST_MISMATCH when flip-byte faults exceed retries', async () => {
    const ref = parseReference(`${proxy.host}/kiln/busybox:1`);
    const c = makeClient([proxy.host], {}, { pullRetry: 2 });
    try {
      const img = await c.resolveImage(ref, HOST_PLATFORM);
      proxy.inject({ match: isBlobGet, times: 100, fault: 'flip-byte' });
      const e = await expectKiln(
        c.fetchBlob(ref, img.manifest.layers[0]!, join(scratch, 'never.tgz')),
        'DIGEST_MISMATCH',
      );
      assert.match(e.message, new RegExp(img.manifest.layers[0]!.digest));
      const streamed = await c.openBlob(ref, img.manifest.layers[0]!);
      await assert.rejects(
        readAll(streamed),
        (err: unknown) => err instanceof KilnError && err.code === 'DIGEST_MISMATCH',
      );
    } finally {
      proxy.clear();
      await c.close();
    }
  });

  const pushFaults: { name: string; fault: Fault; match: (m: string, p: string) => boolean; big: boolean }[] =
    [
      {
        name: '503 on blob PUT',
        fault: 'status-503-retry-after',
        match: (m, p) => m === 'PUT' && p.includes('/blobs/uploads/'),
        big: false,
      },
      {
        name: 'reset on blob PUT',
        fault: 'reset-before-response',
        match: (m, p) => m === 'PUT' && p.includes('/blobs/uploads/'),
        big: false,
      },
      { name: '429 on PATCH', fault: 'status-429', match: (m) => m === 'PATCH', big: true },
      { name: 'reset on PATCH', fault: 'reset-before-response', match: (m) => m === 'PATCH', big: true },
      {
        name: '503 on manifest PUT',
        fault: 'status-503-retry-after',
        match: (m, p) => m === 'PUT' && p.includes('/manifests/'),
        big: false,
      },
    ];
  for (const [i, pf] of pushFaults.entries()) {
    test(`push through faults: ${pf.name} once → succeeds; always → fails with no dangling manifest`, async () => {
      const image = await builtImage(`pf${i}`);
      if (pf.big) {
        const bigLayer = await makeLayer(`pf${i}-big`, { 'big.bin': randomBytes(9 << 20) });
        image.layers.push(bigLayer);
        Object.assign(image, assembleImage({ config: image.config, layers: image.layers, format: 'oci' }));
      }
      const c = makeClient([proxy.host], {}, { pushRetry: 2 });
      try {
        const repoOk = `kiln/pf${i}-ok`;
        proxy.inject({ match: pf.match, times: 1, fault: pf.fault });
        const digest = await c.pushImage(image, [parseReference(`${proxy.host}/${repoOk}:1`)], openLayer);
        assert.equal(digest, image.digest);
        assert.ok(proxy.log.some((e) => e.fault === pf.fault));
        proxy.clear();
        assert.equal(await assertNoDanglingManifests(reg, repoOk), 1);

        const repoBad = `kiln/pf${i}-bad`;
        proxy.inject({ match: pf.match, times: 1000, fault: pf.fault });
        const err = await c.pushImage(image, [parseReference(`${proxy.host}/${repoBad}:1`)], openLayer).then(
          () => undefined,
          (e: unknown) => e,
        );
        proxy.clear();
        assert.ok(err instanceof KilnError, String(err));
        assert.equal(err.category, 'registry');
        assert.equal(await assertNoDanglingManifests(reg, repoBad), 0);
      } finally {
        proxy.clear();
        await c.close();
      }
    });
  }
});

for (const auth of ['htpasswd', 'token'] as RegistryAuth[]) {
  describe(`push to a registry with auth=${auth}`, () => {
    let reg: TestRegistry;
    let client: RegistryClient;
    before(async () => {
      reg = await startRegistry({ auth });
      client = makeClient([reg.host], credsFor(reg));
    });
    after(async () => {
      await client.close();
      await reg.stop();
    });

    test('pushImage, cross-repo mount and pull back', async () => {
      const image = await builtImage(`auth-${auth}`);
      const src = parseReference(`${reg.host}/kiln/auth-src:1`);
      assert.equal(await client.pushImage(image, [src], openLayer), image.digest);
      const layers = image.layers.map((l) => ({
        ...l,
        source: { registry: reg.host, repository: 'kiln/auth-src' },
      }));
      let opened = 0;
      const dst = parseReference(`${reg.host}/kiln/auth-dst:1`);
      await client.pushImage({ ...image, layers }, [dst], (l) => {
        opened++;
        return openLayer(l);
      });
      assert.equal(opened, 0, 'layers were mounted, not uploaded');
      const back = await client.resolveImage(dst, HOST_PLATFORM);
      assert.equal(back.digest, image.digest);
      const out = JSON.parse(
        await skopeo([
          'inspect',
          '--tls-verify=false',
          '--creds',
          `kiln:${reg.users.kiln}`,
          `docker://${reg.host}/kiln/auth-dst:1`,
        ]),
      ) as { Digest: string };
      assert.equal(out.Digest, image.digest);
    });
  });
}

describe('auth protocol details against an in-process registry front', () => {
  let front: Server;
  let storage: Server;
  let frontPort: number;
  let storagePort: number;
  const data = randomBytes(50_000);
  const digest = sha256(data);
  const manifest = Buffer.from(
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}',
  );
  const seen: { storageAuth: (string | undefined)[]; tokenForms: URLSearchParams[]; frontAuth: string[] } = {
    storageAuth: [],
    tokenForms: [],
    frontAuth: [],
  };
  let tokensIssued = 0;
  let expireNext = false;

  before(async () => {
    storage = createServer((req, res) => {
      seen.storageAuth.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(data);
    });
    storagePort = await listen(storage);
    front = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/token') {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => {
          const form = new URLSearchParams(body);
          seen.tokenForms.push(form);
          if (req.method !== 'POST' || form.get('refresh_token') !== 'refresh-me') {
            res.writeHead(401, { 'content-type': 'application/json' });
            res.end('{"errors":[{"code":"UNAUTHORIZED","message":"bad refresh token"}]}');
            return;
          }
          tokensIssued++;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ access_token: `tok-${tokensIssued}`, expires_in: 300 }));
        });
        return;
      }
      const authz = req.headers.authorization ?? '';
      seen.frontAuth.push(authz);
      const valid = authz === `Bearer tok-${tokensIssued}` && tokensIssued > 0 && !expireNext;
      if (!valid) {
        expireNext = false;
        res.writeHead(401, {
          'content-type': 'application/json',
          'www-authenticate': `Bearer realm="http://127.0.0.1:${frontPort}/token",service="front",scope="repository:kiln/x:pull"`,
        });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}');
        return;
      }
      if (url.pathname === `/v2/kiln/x/blobs/${digest}`) {
        // Storage on another origin (localhost vs 127.0.0.1), like an S3 redirect.
        res.writeHead(307, { location: `http://localhost:${storagePort}/blob?sig=abc` });
        res.end();
        return;
      }
      if (url.pathname === '/v2/kiln/x/manifests/1') {
        res.writeHead(200, { 'content-type': MediaType.OciManifest });
        res.end(manifest);
        return;
      }
      res.writeHead(404);
      res.end();
    });
    frontPort = await listen(front);
  });
  after(async () => {
    front.closeAllConnections();
    storage.closeAllConnections();
    await new Promise((r) => front.close(r));
    await new Promise((r) => storage.close(r));
  });

  test('identity token → refresh_token POST; redirect to storage drops Authorization; expired token refetched once', async () => {
    const host = `127.0.0.1:${frontPort}`;
    const c = new RegistryClient({
      registry: regOptions([host]),
      credentials: new CredentialStore({
        explicit: { [host]: { identityToken: 'refresh-me' } },
        env: {},
        dockerConfigDir: join(scratch, 'docker'),
      }),
      baseDelayMs: 5,
    });
    try {
      const ref = parseReference(`${host}/kiln/x:1`);
      const m = await c.getManifest(ref);
      assert.deepEqual(m.bytes, manifest);
      const form = seen.tokenForms[0]!;
      assert.equal(form.get('grant_type'), 'refresh_token');
      assert.equal(form.get('client_id'), 'kiln');
      assert.equal(form.get('service'), 'front');
      assert.equal(form.get('scope'), 'repository:kiln/x:pull');

      const dest = join(scratch, 'redirected.bin');
      await c.fetchBlob(ref, { mediaType: 'application/octet-stream', digest, size: data.length }, dest);
      assert.deepEqual(await readFile(dest), data);
      assert.deepEqual(seen.storageAuth, [undefined], 'no Authorization sent to the storage origin');
      assert.equal(tokensIssued, 1, 'cached token reused');

      // The server now rejects the cached token: one refetch, then success.
      expireNext = true;
      await c.getManifest(ref);
      assert.equal(tokensIssued, 2);
    } finally {
      await c.close();
    }
  });
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}
