/**
 * kiln in a corporate network, with real parts on loopback: tinyproxy as the HTTP(S)_PROXY between
 * kiln and the registries (its log shows the CONNECTs; NO_PROXY bypasses it), a TLS registry whose
 * certificate comes from a private CA made with openssl (trusted through SSL_CERT_FILE,
 * SSL_CERT_DIR, `--registry-certificate DIR` in Kimia's and Kaniko's forms), and a docker.io mirror
 * under a path prefix (a reverse proxy path in front of a second registry, as Harbor's proxy-cache
 * projects and GitLab's dependency proxy serve it) that serves `library/` images.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BuiltImage, LayerBlob } from '../../src/image/types.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { CredentialStore } from '../../src/registry/credentials.ts';
import { defaultRegistryOptions } from '../../src/registry/options.ts';
import type { RegistryOptions } from '../../src/registry/options.ts';
import { parseReference } from '../../src/registry/reference.ts';
import { KilnError } from '../../src/util/errors.ts';
import { kiln } from '../helpers/cli.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import type { FaultProxy } from '../helpers/fault-proxy.ts';
import { startForwardProxy } from '../helpers/forward-proxy.ts';
import type { ForwardProxy } from '../helpers/forward-proxy.ts';
import { ociArch } from '../helpers/images.ts';
import { smallImage, startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';

const execFileP = promisify(execFile);
const PLATFORM = { os: 'linux', architecture: ociArch() };
const openLayer = (l: LayerBlob): ReturnType<typeof createReadStream> => createReadStream(l.path!);

let dir: string;
let plain: TestRegistry; // HTTP
let secure: TestRegistry; // HTTPS from the private CA
let upstream: TestRegistry; // behind the mirror path
let mirror: FaultProxy; // /v2/hub-proxy/... -> upstream /v2/...
let proxy: ForwardProxy;
let image: BuiltImage;
let caPem: string;
let n = 0;

/** A private CA and a server certificate for 127.0.0.1 signed by it. */
async function makeCa(into: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(into, 'ca.pem');
  const caKey = join(into, 'ca.key');
  const key = join(into, 'server.key');
  const csr = join(into, 'server.csr');
  const cert = join(into, 'server.pem');
  const ext = join(into, 'ext.cnf');
  const ossl = (args: string[]): Promise<unknown> => execFileP('openssl', args);
  await ossl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    ca,
    '-days',
    '2',
    '-subj',
    '/CN=kiln test CA',
  ]);
  await ossl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1']);
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await ossl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-out',
    cert,
    '-days',
    '2',
    '-extfile',
    ext,
    '-set_serial',
    '2',
  ]);
  return { ca, cert, key };
}

function client(extra: Partial<RegistryOptions>, env: Record<string, string>): RegistryClient {
  return new RegistryClient({
    registry: { ...defaultRegistryOptions(), ...extra },
    credentials: new CredentialStore({ env: {}, dockerConfigDir: join(dir, 'docker') }),
    baseDelayMs: 5,
    env,
  });
}

/** Pushes `image` to `ref` and pulls it back (manifest, config, every layer verified). */
async function roundTrip(c: RegistryClient, ref: string): Promise<void> {
  const r = parseReference(ref);
  assert.equal(await c.pushImage(image, [r], openLayer), image.digest);
  const got = await c.resolveImage(r, PLATFORM);
  assert.equal(got.digest, image.digest);
  for (const l of got.manifest.layers) await c.fetchBlob(r, l, join(dir, `blob-${++n}`));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-network-'));
  await mkdir(join(dir, 'docker'));
  const pki = await makeCa(dir);
  caPem = pki.ca;
  proxy = await startForwardProxy();
  plain = await startRegistry();
  secure = await startRegistry({ tls: { certPath: pki.cert, keyPath: pki.key, caPath: pki.ca } });
  upstream = await startRegistry();
  mirror = await startFaultProxy(upstream.host, {
    rewrite: (p) => p.replace(/^\/v2\/hub-proxy\//, '/v2/'),
  });
  let seed = 7;
  image = await smallImage(() => (seed = (seed * 16807) % 2147483647) / 2147483647, dir, 'net', 'oci');
});

after(async () => {
  await mirror?.stop();
  await proxy?.stop();
  for (const r of [plain, secure, upstream]) await r?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('forward proxy (tinyproxy) between kiln and the registry', { timeout: 120_000 }, () => {
  test('HTTP_PROXY: push and pull go through CONNECT tunnels', async () => {
    const before = (await proxy.connects()).length;
    const c = client({ insecureRegistries: [plain.host] }, { HTTP_PROXY: proxy.url });
    try {
      await roundTrip(c, `${plain.host}/net/proxied:1`);
    } finally {
      await c.close();
    }
    const tunnels = (await proxy.connects()).slice(before);
    assert.ok(tunnels.length > 0 && tunnels.every((t) => t === plain.host), JSON.stringify(tunnels));
  });

  test('NO_PROXY exempts the registry (host, host:port, CIDR), and nothing reaches the proxy', async () => {
    for (const noProxy of ['127.0.0.1', plain.host, 'example.com,127.0.0.0/8']) {
      const before = (await proxy.connects()).length;
      const c = client({ insecureRegistries: [plain.host] }, { HTTP_PROXY: proxy.url, NO_PROXY: noProxy });
      try {
        await roundTrip(c, `${plain.host}/net/direct:1`);
      } finally {
        await c.close();
      }
      assert.deepEqual((await proxy.connects()).slice(before), [], `NO_PROXY=${noProxy}`);
    }
    // A NO_PROXY that names other hosts leaves the registry on the proxy.
    const before = (await proxy.connects()).length;
    const c = client(
      { insecureRegistries: [plain.host] },
      { HTTP_PROXY: proxy.url, NO_PROXY: 'other.example,10.0.0.0/8' },
    );
    try {
      await roundTrip(c, `${plain.host}/net/still-proxied:1`);
    } finally {
      await c.close();
    }
    assert.ok((await proxy.connects()).slice(before).includes(plain.host));
  });

  test('a proxy that is down fails as a registry error naming the proxy and NO_PROXY', async () => {
    const c = client(
      { insecureRegistries: [plain.host], pullRetry: 0 },
      { http_proxy: 'http://127.0.0.1:9' },
    );
    try {
      const e = await c.getManifest(parseReference(`${plain.host}/net/proxied:1`)).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(e instanceof KilnError, String(e));
      assert.equal(e.category, 'registry');
      assert.match(`${e.message} ${e.hint}`, /127\.0\.0\.1:9.*NO_PROXY/s);
    } finally {
      await c.close();
    }
  });
});

describe('TLS registry from a private CA', { timeout: 120_000 }, () => {
  test('untrusted without the CA: a registry error about the certificate', async () => {
    const c = client({ pushRetry: 0, pullRetry: 0 }, {});
    try {
      const e = await c.getManifest(parseReference(`${secure.host}/net/tls:1`)).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(e instanceof KilnError && e.category === 'registry', String(e));
      assert.match(e.message, /certificate|self.signed|issuer/i);
    } finally {
      await c.close();
    }
  });

  test('trusted via SSL_CERT_FILE, and through HTTPS_PROXY (CONNECT to the TLS port)', async () => {
    const c = client({}, { SSL_CERT_FILE: caPem });
    try {
      await roundTrip(c, `${secure.host}/net/tls:1`);
    } finally {
      await c.close();
    }
    const before = (await proxy.connects()).length;
    const p = client({}, { SSL_CERT_FILE: caPem, HTTPS_PROXY: proxy.url });
    try {
      await roundTrip(p, `${secure.host}/net/tls-proxied:1`);
    } finally {
      await p.close();
    }
    const tunnels = (await proxy.connects()).slice(before);
    assert.ok(tunnels.length > 0 && tunnels.every((t) => t === secure.host), JSON.stringify(tunnels));
  });

  test('trusted via SSL_CERT_DIR and via certificate directories (Kimia DIR, Kaniko host=DIR, certs.d host/)', async () => {
    const certDir = join(dir, 'ssl-certs');
    await mkdir(certDir, { recursive: true });
    await copyFile(caPem, join(certDir, 'private-ca.pem'));
    const kimia = join(dir, 'kimia-certs');
    await mkdir(join(kimia, secure.host), { recursive: true });
    await copyFile(caPem, join(kimia, 'ca.crt'));
    const certsD = join(dir, 'certs.d');
    await mkdir(join(certsD, secure.host), { recursive: true });
    await copyFile(caPem, join(certsD, secure.host, 'ca.crt'));
    const cases: [string, Partial<RegistryOptions>, Record<string, string>][] = [
      ['SSL_CERT_DIR', {}, { SSL_CERT_DIR: certDir }],
      ['--registry-certificate DIR', { certificatePaths: [kimia] }, {}],
      ['--registry-certificate host=DIR', { certificates: { [secure.host]: kimia } }, {}],
      ['--registry-certificate certs.d', { certificatePaths: [certsD] }, {}],
    ];
    for (const [name, extra, env] of cases) {
      const c = client(extra, env);
      try {
        await roundTrip(c, `${secure.host}/net/tls-dir:${++n}`);
      } catch (e) {
        assert.fail(`${name}: ${String(e)}`);
      } finally {
        await c.close();
      }
    }
  });

  test('the CLI: --registry-certificate DIR (was "must be key=value") with HTTPS_PROXY pushes through tinyproxy', async () => {
    const ctx = join(dir, 'ctx');
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a.txt /a.txt\n');
    await writeFile(join(ctx, 'a.txt'), 'through a proxy\n');
    const certs = join(dir, 'cli-certs');
    await mkdir(certs, { recursive: true });
    await copyFile(caPem, join(certs, 'ca.crt'));
    const before = (await proxy.connects()).length;
    const r = await kiln(
      [
        'build',
        '-c',
        ctx,
        '-d',
        `${secure.host}/net/cli:1`,
        '--registry-certificate',
        certs,
        '--isolation',
        'chroot',
        '--work-dir',
        join(dir, 'cli-work'),
      ],
      { HTTPS_PROXY: proxy.url, NO_PROXY: undefined, no_proxy: undefined },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      (await proxy.connects()).slice(before).includes(secure.host),
      'the push tunnelled through tinyproxy',
    );
    const check = client({}, { SSL_CERT_FILE: caPem });
    try {
      assert.ok(
        (await check.getManifest(parseReference(`${secure.host}/net/cli:1`))).digest.startsWith('sha256:'),
      );
    } finally {
      await check.close();
    }
  });
});

describe('docker.io mirror under a path prefix', { timeout: 120_000 }, () => {
  before(async () => {
    const c = client({ insecureRegistries: [upstream.host] }, {});
    try {
      await c.pushImage(image, [parseReference(`${upstream.host}/library/netbox:1`)], openLayer);
    } finally {
      await c.close();
    }
  });

  test('--registry-mirror host/prefix and --registry-map index.docker.io=host/prefix serve library/ images', async () => {
    const forms: Partial<RegistryOptions>[] = [
      { mirrors: [`${mirror.host}/hub-proxy`] },
      { registryMap: { 'index.docker.io': [`${mirror.host}/hub-proxy/`] } },
    ];
    for (const form of forms) {
      const start = mirror.log.length;
      const c = client({ insecureRegistries: [mirror.host], skipDefaultRegistryFallback: true, ...form }, {});
      try {
        const got = await c.resolveImage(parseReference('netbox:1'), PLATFORM);
        assert.equal(got.digest, image.digest);
        await c.fetchBlob(parseReference('netbox:1'), got.manifest.layers[0]!, join(dir, `m-${++n}`));
      } finally {
        await c.close();
      }
      const paths = mirror.log.slice(start).map((e) => e.path);
      assert.ok(paths.includes('/v2/hub-proxy/library/netbox/manifests/1'), JSON.stringify(paths));
      assert.ok(paths.some((p) => p.startsWith('/v2/hub-proxy/library/netbox/blobs/sha256:')));
    }
  });

  test('KANIKO_REGISTRY_MIRROR through the CLI: FROM netbox:1 comes from the prefixed mirror', async () => {
    const ctx = join(dir, 'ctx-mirror');
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, 'Dockerfile'), 'FROM netbox:1\nCOPY b.txt /b.txt\n');
    await writeFile(join(ctx, 'b.txt'), 'from the mirror\n');
    const start = mirror.log.length;
    const r = await kiln(
      [
        'build',
        '-c',
        ctx,
        '--no-push',
        '--tar-path',
        join(dir, 'mirror.tar'),
        '--insecure-registry',
        mirror.host,
        '--skip-default-registry-fallback',
        '--isolation',
        'chroot',
        '--work-dir',
        join(dir, 'mirror-work'),
      ],
      { KANIKO_REGISTRY_MIRROR: `${mirror.host}/hub-proxy` },
    );
    // The layers are random bytes, not tars: what matters here is where the base came from.
    const paths = mirror.log.slice(start).map((e) => e.path);
    assert.ok(
      paths.includes('/v2/hub-proxy/library/netbox/manifests/1'),
      `${JSON.stringify(paths)}\n${r.stderr}`,
    );
    assert.notEqual(r.code, 70, r.stderr);
  });
});

describe('Kaniko config location', () => {
  test('/kaniko/.docker/config.json is read when DOCKER_CONFIG is unset; DOCKER_CONFIG wins', async () => {
    const kaniko = join(dir, 'kaniko-docker');
    await mkdir(kaniko, { recursive: true });
    const auth = Buffer.from('kaniko-user:kaniko-pass').toString('base64');
    await writeFile(join(kaniko, 'config.json'), JSON.stringify({ auths: { 'reg.example': { auth } } }));
    const store = new CredentialStore({ env: { HOME: join(dir, 'home') }, kanikoConfigDir: kaniko });
    assert.equal(store.configPath, join(kaniko, 'config.json'));
    const cred = await store.get('reg.example');
    assert.equal(cred?.username, 'kaniko-user');
    const other = join(dir, 'other-docker');
    await mkdir(other, { recursive: true });
    const withEnv = new CredentialStore({ env: { DOCKER_CONFIG: other }, kanikoConfigDir: kaniko });
    assert.equal(withEnv.configPath, join(other, 'config.json'));
    const none = new CredentialStore({
      env: { HOME: join(dir, 'home') },
      kanikoConfigDir: join(dir, 'absent'),
    });
    assert.equal(none.configPath, join(dir, 'home', '.docker', 'config.json'));
    assert.ok((await readFile(join(kaniko, 'config.json'), 'utf8')).includes('reg.example'));
  });
});
