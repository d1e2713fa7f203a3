import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { promisify } from 'node:util';
import { authHeader, libtrustKeyId, parseScope, startRegistry, TOKEN_SERVICE } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { isBlobGet, startFaultProxy } from '../helpers/fault-proxy.ts';
import type { Fault, FaultProxy } from '../helpers/fault-proxy.ts';
import { pushBusyboxImage } from '../helpers/images.ts';

const execFileP = promisify(execFile);
const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Manifest {
  config: { digest: string };
  layers: { digest: string; size: number }[];
}

async function skopeoInspect(ref: string, extra: string[] = [], raw = false): Promise<string> {
  const args = ['inspect', '--tls-verify=false', ...extra];
  if (raw) args.push('--raw');
  args.push(`docker://${ref}`);
  const { stdout } = await execFileP('skopeo', args, { maxBuffer: 16 << 20 });
  return stdout;
}

interface RawResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  error?: string;
}

/** A GET that keeps whatever bytes arrived and the error that ended it, if any. */
function rawGet(url: string): Promise<RawResult> {
  return new Promise((resolve) => {
    let responded = false;
    const req = httpGet(url, { agent: false }, (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      let error: string | undefined;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
      res.on('aborted', () => (error ??= 'aborted'));
      res.on('close', () => {
        if (!res.complete) error ??= 'incomplete';
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), error });
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      // After a response started, its own 'close' reports the outcome.
      if (!responded) resolve({ status: 0, headers: {}, body: Buffer.alloc(0), error: e.code ?? e.message });
    });
  });
}

describe('registry harness helpers', () => {
  test('parseScope handles names with ports and several actions', () => {
    const cases: [string, ReturnType<typeof parseScope>][] = [
      ['repository:a/b:pull,push', { type: 'repository', name: 'a/b', actions: ['pull', 'push'] }],
      ['repository:h:5000/x:pull', { type: 'repository', name: 'h:5000/x', actions: ['pull'] }],
      ['registry:catalog:*', { type: 'registry', name: 'catalog', actions: ['*'] }],
      ['nonsense', undefined],
    ];
    for (const [input, want] of cases) assert.deepEqual(parseScope(input), want, input);
  });

  test('libtrustKeyId is 12 groups of 4 base32 chars and depends on the key', () => {
    const a = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    const b = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    const id = libtrustKeyId(a);
    assert.match(id, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    assert.equal(libtrustKeyId(createPublicKey(a.export({ type: 'spki', format: 'pem' }))), id);
    assert.notEqual(libtrustKeyId(b), id);
  });
});

describe('real registry harness', { timeout: 240_000 }, () => {
  let open: TestRegistry;
  let basic: TestRegistry;
  let token: TestRegistry;
  let proxy: FaultProxy;
  let openDigest: string;
  let manifest: Manifest;

  before(async () => {
    [open, basic, token] = await Promise.all([
      startRegistry(),
      startRegistry({ auth: 'htpasswd', users: { alice: 'wonderland' } }),
      startRegistry({ auth: 'token', users: { bob: 'builder' } }),
    ]);
    openDigest = await pushBusyboxImage(open, 'lib/busybox', 'v1');
    manifest = JSON.parse(await skopeoInspect(`${open.host}/lib/busybox:v1`, [], true)) as Manifest;
    proxy = await startFaultProxy(open.host);
  });

  after(async () => {
    await Promise.allSettled([open?.stop(), basic?.stop(), token?.stop(), proxy?.stop()]);
  });

  test('open registry answers GET /v2/ with 200', async () => {
    const r = await fetch(`${open.url}/v2/`);
    assert.equal(r.status, 200);
    assert.equal(open.auth, 'none');
    assert.match(open.host, /^127\.0\.0\.1:\d+$/);
  });

  test('htpasswd registry: 401 without or with wrong creds, 200 with them', async () => {
    const none = await fetch(`${basic.url}/v2/`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Basic /);
    const wrong = await fetch(`${basic.url}/v2/`, {
      headers: { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` },
    });
    assert.equal(wrong.status, 401);
    const ok = await fetch(`${basic.url}/v2/`, { headers: { authorization: (await authHeader(basic))! } });
    assert.equal(ok.status, 200);
  });

  test('htpasswd registry accepts a skopeo push with creds', async () => {
    const digest = await pushBusyboxImage(basic, 'team/bb', 'latest');
    assert.equal(digest, openDigest);
  });

  test('token registry: challenge, token with Basic auth, Bearer accepted', async () => {
    const ts = token.tokenServer!;
    const none = await fetch(`${token.url}/v2/`);
    assert.equal(none.status, 401);
    const challenge = none.headers.get('www-authenticate') ?? '';
    assert.ok(challenge.startsWith(`Bearer realm="${ts.url}/token"`), challenge);
    assert.ok(challenge.includes(`service="${TOKEN_SERVICE}"`), challenge);

    const bad = await fetch(`${ts.url}/token?service=${TOKEN_SERVICE}`, {
      headers: { authorization: `Basic ${Buffer.from('bob:wrong').toString('base64')}` },
    });
    assert.equal(bad.status, 401);

    const before = ts.issued;
    const q = `service=${TOKEN_SERVICE}&scope=repository:x/y:pull,push&scope=repository:z:pull`;
    const r = await fetch(`${ts.url}/token?${q}`, {
      headers: { authorization: `Basic ${Buffer.from('bob:builder').toString('base64')}` },
    });
    assert.equal(r.status, 200);
    const body = (await r.json()) as {
      token: string;
      access_token: string;
      expires_in: number;
      issued_at: string;
    };
    assert.equal(body.token, body.access_token);
    assert.ok(body.expires_in > 0);
    assert.equal(ts.issued, before + 1);
    const [h, c] = body.token
      .split('.')
      .slice(0, 2)
      .map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()) as unknown);
    assert.equal((h as { alg: string }).alg, 'RS256');
    assert.deepEqual((c as { access: unknown }).access, [
      { type: 'repository', name: 'x/y', actions: ['pull', 'push'] },
      { type: 'repository', name: 'z', actions: ['pull'] },
    ]);

    const ok = await fetch(`${token.url}/v2/`, { headers: { authorization: `Bearer ${body.token}` } });
    assert.equal(ok.status, 200);
    const forged = body.token.slice(0, -4) + (body.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const rejected = await fetch(`${token.url}/v2/`, { headers: { authorization: `Bearer ${forged}` } });
    assert.equal(rejected.status, 401);
  });

  test('token registry: skopeo push with creds works, anonymous token cannot pull', async () => {
    const before = token.tokenServer!.issued;
    const digest = await pushBusyboxImage(token, 'secure/bb', 't1');
    assert.equal(digest, openDigest);
    assert.ok(token.tokenServer!.issued > before, 'skopeo fetched tokens from our server');
    const out = await skopeoInspect(`${token.host}/secure/bb:t1`, ['--creds', 'bob:builder'], true);
    assert.equal(sha256(out), digest);

    const anon = (await (
      await fetch(`${token.tokenServer!.url}/token?service=${TOKEN_SERVICE}&scope=repository:secure/bb:pull`)
    ).json()) as { token: string };
    const denied = await fetch(`${token.url}/v2/secure/bb/manifests/t1`, {
      headers: { authorization: `Bearer ${anon.token}` },
    });
    assert.equal(denied.status, 401);
  });

  test('pushBusyboxImage result is readable by skopeo inspect', async () => {
    const info = JSON.parse(await skopeoInspect(`${open.host}/lib/busybox:v1`)) as {
      Digest: string;
      Os: string;
      Layers: string[];
    };
    assert.equal(info.Digest, openDigest);
    assert.equal(info.Os, 'linux');
    assert.equal(info.Layers.length, 1);
    const raw = await skopeoInspect(`${open.host}/lib/busybox:v1`, [], true);
    assert.equal(sha256(raw), openDigest);
    // the layer really is a busybox rootfs
    const layer = await fetch(`${open.url}/v2/lib/busybox/blobs/${manifest.layers[0]!.digest}`);
    const bytes = Buffer.from(await layer.arrayBuffer());
    assert.equal(sha256(bytes), manifest.layers[0]!.digest);
    const listing = await new Promise<string>((resolve, reject) => {
      const p = execFile('tar', ['-tzvf', '-', '--numeric-owner'], { maxBuffer: 16 << 20 }, (e, so) =>
        e ? reject(e) : resolve(so),
      );
      p.stdin!.end(bytes);
    });
    assert.match(listing, /^-rwxr-xr-x 0\/0 .* bin\/busybox$/m);
    assert.match(listing, /bin\/sh -> busybox$/m);
    assert.match(listing, /etc\/passwd$/m);
    assert.match(listing, /etc\/group$/m);
  });

  test('pushes to the same cached layout give the same digest', async () => {
    assert.equal(await pushBusyboxImage(open, 'other/name', 'x'), openDigest);
  });

  test('fault proxy forwards untouched traffic (skopeo inspect through it)', async () => {
    proxy.clear();
    const out = await skopeoInspect(`${proxy.host}/lib/busybox:v1`, [], true);
    assert.equal(sha256(out), openDigest);
    assert.ok(
      proxy.log.some((e) => e.method === 'GET' && e.path.includes('/manifests/v1') && e.status === 200),
    );
  });

  const blobPath = (): string => `/v2/lib/busybox/blobs/${manifest.layers[0]!.digest}`;

  const faultCases: { fault: Fault; check: (r: RawResult, size: number, digest: string) => void }[] = [
    {
      fault: 'status-503-retry-after',
      check: (r) => {
        assert.equal(r.status, 503);
        assert.equal(r.headers['retry-after'], '1');
      },
    },
    { fault: 'status-429', check: (r) => assert.equal(r.status, 429) },
    {
      fault: 'reset-before-response',
      check: (r) => {
        assert.equal(r.status, 0);
        assert.ok(r.error, 'request failed');
      },
    },
    {
      fault: 'drop-mid-body',
      check: (r, size) => {
        assert.equal(r.status, 200);
        assert.equal(r.headers['content-length'], String(size));
        assert.equal(r.body.length, Math.floor(size / 2), 'half the body arrives before the reset');
        assert.ok(r.error, 'body ended in an error');
      },
    },
    {
      fault: 'truncate-body',
      check: (r, size) => {
        assert.equal(r.status, 200);
        assert.equal(r.headers['content-length'], String(size));
        assert.equal(r.body.length, Math.floor(size / 2));
        assert.ok(r.error, 'premature end is reported');
      },
    },
    {
      fault: 'flip-byte',
      check: (r, size, digest) => {
        assert.equal(r.status, 200);
        assert.equal(r.error, undefined);
        assert.equal(r.body.length, size);
        assert.notEqual(sha256(r.body), digest);
      },
    },
  ];

  for (const { fault, check } of faultCases) {
    test(`fault proxy: ${fault} on a blob GET, then clean once used up`, async () => {
      proxy.clear();
      const { digest, size } = manifest.layers[0]!;
      proxy.inject({ match: isBlobGet, times: 1, fault });
      const logStart = proxy.log.length;
      const faulty = await rawGet(`${proxy.url}${blobPath()}`);
      check(faulty, size, digest);
      assert.equal(proxy.log[logStart]?.fault, fault);
      const clean = await rawGet(`${proxy.url}${blobPath()}`);
      assert.equal(clean.status, 200);
      assert.equal(clean.error, undefined);
      assert.equal(sha256(clean.body), digest);
      assert.equal(proxy.log.at(-1)?.fault, undefined);
    });
  }

  test('fault proxy: fetch (undici) sees drop as a reset and truncate as a closed socket', async () => {
    proxy.clear();
    const cases: [Fault, RegExp][] = [
      ['drop-mid-body', /ECONNRESET/],
      ['truncate-body', /UND_ERR_SOCKET|other side closed/],
    ];
    for (const [fault, want] of cases) {
      proxy.inject({ match: isBlobGet, times: 1, fault });
      const res = await fetch(`${proxy.url}${blobPath()}`);
      assert.equal(res.status, 200);
      const err = await res.arrayBuffer().then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof Error, `${fault}: body read fails`);
      const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
      assert.match(`${cause?.code} ${cause?.message}`, want, fault);
    }
  });

  test('fault proxy: skopeo can push through it (uploads, Location headers)', async () => {
    proxy.clear();
    const digest = await pushBusyboxImage(open, 'via/proxy', 'p1', { host: proxy.host });
    assert.equal(digest, openDigest);
    assert.ok(
      proxy.log.some((e) => e.method === 'PUT' && e.path.includes('/manifests/p1') && e.status === 201),
    );
    const direct = await skopeoInspect(`${open.host}/via/proxy:p1`, [], true);
    assert.equal(sha256(direct), openDigest);
  });

  test('fault proxy: flip-byte changes exactly the middle byte', async () => {
    proxy.clear();
    const { size } = manifest.layers[0]!;
    const good = await rawGet(`${proxy.url}${blobPath()}`);
    proxy.inject({ match: isBlobGet, times: 1, fault: 'flip-byte' });
    const bad = await rawGet(`${proxy.url}${blobPath()}`);
    const diffs: number[] = [];
    for (let i = 0; i < size; i++) if (good.body[i] !== bad.body[i]) diffs.push(i);
    assert.deepEqual(diffs, [Math.floor(size / 2)]);
  });

  test('fault proxy: rules match selectively and count down', async () => {
    proxy.clear();
    proxy.inject({
      match: (m, p) => m === 'GET' && p.includes('/manifests/'),
      times: 2,
      fault: 'status-429',
    });
    const v2 = await rawGet(`${proxy.url}/v2/`);
    assert.equal(v2.status, 200);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await rawGet(`${proxy.url}/v2/lib/busybox/manifests/v1`)).status);
    assert.deepEqual(statuses.slice(0, 2), [429, 429]);
    assert.notEqual(statuses[2], 429, 'rule is used up after `times` requests');
  });
});
