/**
 * The fault suite: kiln's registry client pushes and pulls small images through the fault-injecting
 * proxy while a fixed-seed schedule breaks the traffic in both directions (drops and truncation of
 * manifests and blobs, byte flips on the way down and up, 5xx/429 with and without Retry-After,
 * resets, stalls). After every operation a direct check (plain fetch to the registry, not kiln's
 * client) proves that every tag names a manifest whose blobs are complete and correct. An operation
 * either succeeds or, when its faults outlast the retries on purpose, fails with a registry
 * KilnError; anything else (an exit-70 error, a broken tag) fails the suite.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { canonicalJson } from '../../src/image/digest.ts';
import { MediaType } from '../../src/image/types.ts';
import type { Descriptor, Index, LayerBlob, Manifest } from '../../src/image/types.ts';
import { memoryLogger } from '../../src/log/logger.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { CredentialStore } from '../../src/registry/credentials.ts';
import { defaultRegistryOptions } from '../../src/registry/options.ts';
import { parseReference } from '../../src/registry/reference.ts';
import { KilnError } from '../../src/util/errors.ts';
import { kiln } from '../helpers/cli.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import type { Fault, FaultProxy, FaultRule } from '../helpers/fault-proxy.ts';
import { ociArch } from '../helpers/images.ts';
import { smallImage, startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';

const SEED = 0x6b696c6e; // "kiln"
const PUSHES = 40;
const PULLS = 40;
const TIMEOUT_MS = 800; // stalls end in a client timeout: short here, 120 s by default
const ARCH = ociArch();
const HOST_PLATFORM = { os: 'linux', architecture: ARCH };
const ACCEPT = [MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest].join(', ');

const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** mulberry32: a small seeded PRNG, so that a failing schedule can be replayed exactly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Target =
  'manifest-get' | 'blob-get' | 'manifest-put' | 'blob-put' | 'patch' | 'upload-post' | 'blob-head';

const MATCH: Record<Target, (m: string, p: string) => boolean> = {
  'manifest-get': (m, p) => m === 'GET' && p.includes('/manifests/'),
  'blob-get': (m, p) => m === 'GET' && /\/blobs\/sha256:/.test(p),
  'manifest-put': (m, p) => m === 'PUT' && p.includes('/manifests/'),
  'blob-put': (m, p) => m === 'PUT' && p.includes('/blobs/uploads/'),
  patch: (m) => m === 'PATCH',
  'upload-post': (m, p) => m === 'POST' && p.includes('/blobs/uploads/'),
  'blob-head': (m, p) => m === 'HEAD' && p.includes('/blobs/'),
};

interface Planned {
  fault: Fault;
  target: Target;
  times: number;
  fraction?: number;
}

const PULL_POOL: [Fault, Target][] = [];
for (const t of ['manifest-get', 'blob-get'] as Target[]) {
  for (const f of [
    'drop-mid-body',
    'truncate-body',
    'flip-byte',
    'stall-mid-body',
    'stall-before-response',
    'status-503-retry-after',
    'status-429',
    'reset-before-response',
  ] as Fault[])
    PULL_POOL.push([f, t]);
}
const PUSH_POOL: [Fault, Target][] = [
  ['flip-request-byte', 'blob-put'],
  ['flip-request-byte', 'patch'],
  ['flip-request-byte', 'manifest-put'],
  ['drop-mid-request', 'blob-put'],
  ['drop-mid-request', 'patch'],
  ['drop-mid-request', 'manifest-put'],
  ['status-503-retry-after', 'blob-put'],
  ['status-503-retry-after', 'manifest-put'],
  ['status-503-retry-after', 'upload-post'],
  ['status-429', 'patch'],
  ['status-429', 'blob-head'],
  ['reset-before-response', 'upload-post'],
  ['reset-before-response', 'manifest-put'],
  ['reset-before-response', 'blob-head'],
  ['stall-before-response', 'blob-put'],
  ['stall-before-response', 'manifest-put'],
];
/** Faults that are cheap to repeat until the retries run out (no stalls or Retry-After waits). */
const PERSISTENT_PULL: [Fault, Target][] = [
  ['drop-mid-body', 'manifest-get'],
  ['truncate-body', 'manifest-get'],
  ['flip-byte', 'blob-get'],
  ['truncate-body', 'blob-get'],
];
const PERSISTENT_PUSH: [Fault, Target][] = [
  ['flip-request-byte', 'manifest-put'],
  ['drop-mid-request', 'blob-put'],
  ['status-429', 'manifest-put'],
];

interface Schedule {
  faults: Planned[];
  persistent: boolean;
  byDigest: boolean;
}

/**
 * Operation `i`'s faults: the pool entry `i` (so every pair occurs), sometimes a second one on
 * another target, each 1 or 2 times; every 9th operation a fault that outlasts the retries.
 */
function schedule(
  rand: () => number,
  i: number,
  pool: [Fault, Target][],
  persistent: [Fault, Target][],
): Schedule {
  const byDigest = rand() < 0.3;
  const fraction = (): number => Math.floor(rand() * 1000) / 1000;
  if (i % 9 === 8) {
    const [fault, target] = persistent[Math.floor(i / 9) % persistent.length]!;
    return { faults: [{ fault, target, times: 1000, fraction: fraction() }], persistent: true, byDigest };
  }
  const [fault, target] = pool[i % pool.length]!;
  // Waits (stalls, Retry-After) once per operation; the others once or twice.
  const slow = fault.startsWith('stall') || fault === 'status-503-retry-after';
  const times = slow ? 1 : 1 + Math.floor(rand() * 2);
  const faults: Planned[] = [{ fault, target, times, fraction: fraction() }];
  if (rand() < 0.4) {
    const [f2, t2] = pool[Math.floor(rand() * pool.length)]!;
    // A second fault never waits: the waits are covered by the first ones and cost wall time.
    const slow2 = f2.startsWith('stall') || f2 === 'status-503-retry-after';
    if (t2 !== target && !slow2) faults.push({ fault: f2, target: t2, times: 1, fraction: fraction() });
  }
  return { faults, persistent: false, byDigest };
}

function inject(proxy: FaultProxy, s: Schedule): void {
  for (const f of s.faults) {
    const rule: FaultRule = { match: MATCH[f.target], times: f.times, fault: f.fault };
    if (f.fraction !== undefined) rule.fraction = f.fraction;
    proxy.inject(rule);
  }
}

function openLayer(l: LayerBlob): Readable {
  return createReadStream(l.path!);
}

interface TagState {
  /** Digests the tag may name now: the last good push, plus the image of a push that failed after it. */
  allowed: Set<string>;
  /** The last push to the tag failed, so the tag may also be gone. */
  mayBeAbsent: boolean;
}

/**
 * The direct check: every tag of `repo` (plain fetch to the registry, not through the proxy or
 * kiln) names an allowed manifest whose config and layers download completely with their digests.
 * Returns how many blobs were checked.
 */
async function checkRepo(reg: TestRegistry, repo: string, tags: Map<string, TagState>): Promise<number> {
  const r = await fetch(`${reg.url}/v2/${repo}/tags/list`);
  const listed = r.status === 404 ? [] : (((await r.json()) as { tags: string[] | null }).tags ?? []);
  let blobs = 0;
  for (const tag of new Set([...listed, ...tags.keys()])) {
    const want = tags.get(tag);
    const m = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: ACCEPT } });
    const bytes = Buffer.from(await m.arrayBuffer());
    if (m.status === 404) {
      assert.ok(want?.mayBeAbsent, `${repo}:${tag} is gone although its last push succeeded`);
      continue;
    }
    assert.equal(m.status, 200, `${repo}:${tag}`);
    assert.ok(want, `${repo}:${tag} exists but was never pushed`);
    assert.ok(want.allowed.has(sha256(bytes)), `${repo}:${tag} names ${sha256(bytes)}, not a pushed image`);
    const parsed = JSON.parse(bytes.toString()) as Manifest & Partial<Index>;
    const refs: Descriptor[] = parsed.manifests ? [] : [parsed.config, ...parsed.layers];
    for (const d of refs) {
      const b = await fetch(`${reg.url}/v2/${repo}/blobs/${d.digest}`);
      const body = Buffer.from(await b.arrayBuffer());
      assert.equal(b.status, 200, `${repo}:${tag} blob ${d.digest}`);
      assert.equal(body.length, d.size, `${repo}:${tag} blob ${d.digest} size`);
      assert.equal(sha256(body), d.digest, `${repo}:${tag} blob ${d.digest} content`);
      blobs++;
    }
  }
  return blobs;
}

type Outcome = 'ok' | 'failed-clean';

/** A failure is expected only as a registry KilnError (exit 5), never a bare or internal error. */
function classify(e: unknown, persistent: boolean, what: string): Outcome {
  assert.ok(e instanceof KilnError, `${what}: not a KilnError (would exit 70): ${String(e)}`);
  assert.equal(e.category, 'registry', `${what}: ${e.code}: ${e.message}`);
  assert.ok(
    persistent,
    `${what}: failed although its faults were within the retries: ${e.code}: ${e.message}`,
  );
  assert.doesNotMatch(e.hint ?? '', /--format/, `${what}: transit faults must not blame the format`);
  return 'failed-clean';
}

let reg: TestRegistry;
let proxy: FaultProxy;
let scratch: string;

function client(host: string): { c: RegistryClient; warnings: string[] } {
  const { logger, lines } = memoryLogger();
  const c = new RegistryClient({
    registry: {
      ...defaultRegistryOptions(),
      insecureRegistries: [host, reg.host],
      pushRetry: 3,
      pullRetry: 3,
    },
    credentials: new CredentialStore({ env: {}, dockerConfigDir: join(scratch, 'docker') }),
    logger,
    baseDelayMs: 5,
    timeoutMs: TIMEOUT_MS,
    monolithicMaxBytes: 16 << 10,
    chunkSizeBytes: 16 << 10,
  });
  return { c, warnings: lines };
}

interface Teed {
  ended: boolean;
  digest: string;
}

/** What a download's second reader saw: whether it ended (not errored), and the digest of its bytes. */
function collect(r: Readable): Promise<Teed> {
  const h = createHash('sha256');
  return new Promise((resolve) => {
    r.on('data', (c: Buffer) => h.update(c));
    r.on('end', () => resolve({ ended: true, digest: `sha256:${h.digest('hex')}` }));
    r.on('error', () => resolve({ ended: false, digest: '' }));
  });
}

const tally = {
  pushes: { ok: 0, 'failed-clean': 0 } as Record<Outcome, number>,
  pulls: { ok: 0, 'failed-clean': 0 } as Record<Outcome, number>,
  applied: new Map<string, number>(),
  blobsChecked: 0,
};

function countApplied(from: number): void {
  for (const e of proxy.log.slice(from)) {
    if (!e.fault) continue;
    tally.applied.set(e.fault, (tally.applied.get(e.fault) ?? 0) + 1);
  }
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'kiln-faults-'));
  await mkdir(join(scratch, 'docker'));
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.host);
});

after(async () => {
  await proxy?.stop();
  await reg?.stop();
  await rm(scratch, { recursive: true, force: true });
});

describe('registry fault suite (in-process client)', { timeout: 300_000 }, () => {
  test(`${PUSHES} pushes through seeded faults leave every tag complete and correct`, async () => {
    const rand = prng(SEED);
    const { c, warnings } = client(proxy.host);
    const state = new Map<string, Map<string, TagState>>();
    try {
      for (let i = 0; i < PUSHES; i++) {
        const s = schedule(rand, i, PUSH_POOL, PERSISTENT_PUSH);
        const repo = `faults/push-${i % 6}`;
        const tag = `t${i % 2}`;
        const image = await smallImage(rand, scratch, `push-${i}`);
        const tags = state.get(repo) ?? new Map<string, TagState>();
        state.set(repo, tags);
        const from = proxy.log.length;
        const t0 = Date.now();
        inject(proxy, s);
        let outcome: Outcome;
        try {
          const digest = await c.pushImage(
            image,
            [parseReference(`${proxy.host}/${repo}:${tag}`)],
            openLayer,
          );
          assert.equal(digest, image.digest);
          assert.ok(!s.persistent, `push ${i} succeeded through a persistent ${s.faults[0]!.fault}`);
          tags.set(tag, { allowed: new Set([image.digest]), mayBeAbsent: false });
          outcome = 'ok';
        } catch (e) {
          outcome = classify(e, s.persistent, `push ${i} (${JSON.stringify(s.faults)})`);
          const prev = tags.get(tag);
          tags.set(tag, { allowed: new Set([...(prev?.allowed ?? []), image.digest]), mayBeAbsent: true });
        } finally {
          proxy.clear();
        }
        countApplied(from);
        if (process.env.KILN_FAULTS_TRACE)
          console.log(`push ${i} ${Date.now() - t0} ms ${outcome} ${JSON.stringify(s.faults)}`);
        tally.pushes[outcome]++;
        tally.blobsChecked += await checkRepo(reg, repo, tags);
      }
    } finally {
      await c.close();
    }
    assert.ok(
      warnings.some((w) => /restarting|PUT again/.test(w)),
      'faults were retried',
    );
    assert.equal(tally.pushes.ok + tally.pushes['failed-clean'], PUSHES);
    assert.ok(tally.pushes['failed-clean'] >= 3 && tally.pushes.ok >= 35, JSON.stringify(tally.pushes));
  });

  test(`${PULLS} pulls through seeded faults get verified images or a registry error`, async () => {
    const rand = prng(SEED + 1);
    const direct = client(reg.host).c;
    const images: { repo: string; digest: string; layers: Descriptor[]; config: Descriptor }[] = [];
    const tags = new Map<string, Map<string, TagState>>();
    for (let k = 0; k < 5; k++) {
      const image = await smallImage(rand, scratch, `pull-${k}`);
      const repo = `faults/pull-${k}`;
      await direct.pushImage(image, [parseReference(`${reg.host}/${repo}:1`)], openLayer);
      images.push({
        repo,
        digest: image.digest,
        layers: image.manifest.layers,
        config: image.manifest.config,
      });
      tags.set(repo, new Map([['1', { allowed: new Set([image.digest]), mayBeAbsent: false }]]));
    }
    // One multi-platform index: the pull picks the host's manifest out of it.
    const idx: Index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: images[0]!.digest,
          size: 0,
          platform: { os: 'linux', architecture: 's390x' },
        },
      ],
    };
    const m0 = await (
      await fetch(`${reg.url}/v2/${images[0]!.repo}/manifests/1`, { headers: { accept: ACCEPT } })
    ).arrayBuffer();
    idx.manifests[0]!.size = m0.byteLength;
    idx.manifests.push({ ...idx.manifests[0]!, platform: HOST_PLATFORM });
    const idxBytes = Buffer.from(canonicalJson(idx));
    await direct.putManifest(
      parseReference(`${reg.host}/${images[0]!.repo}:multi`),
      idxBytes,
      MediaType.OciIndex,
    );
    tags.get(images[0]!.repo)!.set('multi', { allowed: new Set([sha256(idxBytes)]), mayBeAbsent: false });
    await direct.close();

    const { c } = client(proxy.host);
    try {
      for (let i = 0; i < PULLS; i++) {
        const s = schedule(rand, i, PULL_POOL, PERSISTENT_PULL);
        const img = images[i % images.length]!;
        const useIndex = i % images.length === 0 && i % 2 === 0;
        const reference = useIndex
          ? `${img.repo}:multi`
          : s.byDigest
            ? `${img.repo}@${img.digest}`
            : `${img.repo}:1`;
        const ref = parseReference(`${proxy.host}/${reference}`);
        const dest = join(scratch, `pulled-${i}`);
        await mkdir(dest);
        const from = proxy.log.length;
        const t0 = Date.now();
        inject(proxy, s);
        let outcome: Outcome;
        try {
          const got = await c.resolveImage(ref, HOST_PLATFORM);
          assert.equal(got.digest, img.digest, `pull ${i}: the host platform's manifest`);
          assert.equal(sha256(got.configBytes), img.config.digest);
          for (const l of got.manifest.layers) {
            const file = join(dest, l.digest.slice(7));
            await c.fetchBlob(ref, l, file);
            const bytes = await readFile(file);
            assert.equal(bytes.length, l.size);
            assert.equal(sha256(bytes), l.digest);
          }
          assert.deepEqual(
            got.manifest.layers.map((l) => l.digest),
            img.layers.map((l) => l.digest),
          );
          assert.ok(!s.persistent, `pull ${i} succeeded through a persistent ${s.faults[0]!.fault}`);
          outcome = 'ok';
        } catch (e) {
          outcome = classify(e, s.persistent, `pull ${i} ${reference} (${JSON.stringify(s.faults)})`);
          // A failed download leaves no file behind, partial or wrong.
          for (const l of img.layers)
            assert.ok(!existsSync(join(dest, l.digest.slice(7))), 'no partial blob');
        } finally {
          proxy.clear();
        }
        countApplied(from);
        if (process.env.KILN_FAULTS_TRACE)
          console.log(`pull ${i} ${Date.now() - t0} ms ${outcome} ${JSON.stringify(s.faults)}`);
        tally.pulls[outcome]++;
        tally.blobsChecked += await checkRepo(reg, img.repo, tags.get(img.repo)!);
      }
    } finally {
      await c.close();
    }
    assert.equal(tally.pulls.ok + tally.pulls['failed-clean'], PULLS);
    assert.ok(tally.pulls['failed-clean'] >= 3 && tally.pulls.ok >= 35, JSON.stringify(tally.pulls));
  });

  test('a manifest the registry stored corrupted is PUT again; corrupted every time, the tag is removed', async () => {
    const rand = prng(SEED + 2);
    const { c, warnings } = client(proxy.host);
    try {
      const image = await smallImage(rand, scratch, 'stored-corrupt', 'oci');
      // A byte of the title annotation's value: the JSON stays valid, so the registry stores it.
      const inTitle = image.manifestBytes.indexOf('stored-corrupt') + 3;
      assert.ok(inTitle > 3, 'the OCI manifest carries the title annotation');
      const rule = { match: MATCH['manifest-put'], fault: 'flip-request-byte' as Fault, offset: inTitle };
      const repo = 'faults/stored-corrupt';
      const tags = new Map<string, TagState>();

      proxy.inject({ ...rule, times: 1 });
      const from = proxy.log.length;
      assert.equal(
        await c.pushImage(image, [parseReference(`${proxy.host}/${repo}:once`)], openLayer),
        image.digest,
      );
      proxy.clear();
      assert.equal(proxy.log.slice(from).filter((e) => e.fault === 'flip-request-byte').length, 1);
      assert.ok(
        warnings.some((w) => /re-pushed the manifest after the registry stored corrupted copies/.test(w)),
      );
      tags.set('once', { allowed: new Set([image.digest]), mayBeAbsent: false });
      await checkRepo(reg, repo, tags);

      proxy.inject({ ...rule, times: 1000 });
      const err = await c.pushImage(image, [parseReference(`${proxy.host}/${repo}:always`)], openLayer).then(
        () => undefined,
        (e: unknown) => e,
      );
      proxy.clear();
      assert.ok(err instanceof KilnError, String(err));
      assert.equal(err.code, 'MANIFEST_CORRUPTED', err.message);
      assert.match(err.hint ?? '', /corrupted between kiln and the registry.*the corrupted copy was deleted/);
      assert.doesNotMatch(err.hint ?? '', /--format/);
      tags.set('always', { allowed: new Set([image.digest]), mayBeAbsent: true });
      await checkRepo(reg, repo, tags);
      const always = await fetch(`${reg.url}/v2/${repo}/manifests/always`, { headers: { accept: ACCEPT } });
      await always.arrayBuffer();
      assert.equal(always.status, 404, 'the tag no longer names the corrupted copy');
    } finally {
      proxy.clear();
      await c.close();
    }
  });

  test('a blob streamed to a second reader: that reader ends with exactly the blob, or errors', async () => {
    // The base extraction reads a layer as it downloads (base.ts): it may only ever see `end` after
    // bytes that were verified, whatever breaks the download on the way.
    const rand = prng(SEED + 3);
    const { c } = client(proxy.host);
    try {
      const image = await smallImage(rand, scratch, 'streamed', 'oci');
      const repo = 'faults/streamed';
      assert.equal(
        await c.pushImage(image, [parseReference(`${reg.host}/${repo}:1`)], openLayer),
        image.digest,
      );
      const ref = parseReference(`${proxy.host}/${repo}:1`);
      const layer = image.layers[1]!.descriptor; // the larger one: several chunks
      const fetchTeed = async (name: string): Promise<{ ok: boolean; seen: Teed }> => {
        const reader = new PassThrough();
        const seen = collect(reader);
        const ok = await c.fetchBlob(ref, layer, join(scratch, `streamed-${name}`), reader).then(
          () => true,
          (e: unknown) => {
            assert.ok(e instanceof KilnError, String(e));
            return false;
          },
        );
        return { ok, seen: await seen };
      };
      const clean = await fetchTeed('clean');
      assert.deepEqual(clean, { ok: true, seen: { ended: true, digest: layer.digest } });
      const cases: Array<[Fault, boolean]> = [
        // A fault in the body: the reader saw some of the broken attempt, so it errors even when
        // the retry succeeds. One before any byte is retried before the reader sees anything.
        ['flip-byte', false],
        ['truncate-body', false],
        ['drop-mid-body', false],
        ['reset-before-response', true],
      ];
      for (const [fault, readerEnds] of cases) {
        proxy.inject({ match: MATCH['blob-get'], times: 1, fault, fraction: 0.6 });
        const once = await fetchTeed(`${fault}-once`);
        proxy.clear();
        const seen = readerEnds ? { ended: true, digest: layer.digest } : { ended: false, digest: '' };
        assert.deepEqual(once, { ok: true, seen }, fault);
        // Every time: the download fails, and so does its reader.
        proxy.inject({ match: MATCH['blob-get'], times: 1000, fault, fraction: 0.6 });
        const always = await fetchTeed(`${fault}-always`);
        proxy.clear();
        assert.deepEqual(always, { ok: false, seen: { ended: false, digest: '' } }, fault);
      }
    } finally {
      proxy.clear();
      await c.close();
    }
  });

  test('every fault kind was applied on the wire', () => {
    const kinds = new Set([...PULL_POOL, ...PUSH_POOL].map(([f]) => f));
    for (const k of kinds) assert.ok((tally.applied.get(k) ?? 0) > 0, `${k} never applied`);
    console.log(
      `fault suite (seed ${SEED}): pushes ${JSON.stringify(tally.pushes)}, pulls ${JSON.stringify(tally.pulls)}, ` +
        `faults applied ${JSON.stringify(Object.fromEntries([...tally.applied].sort()))}, blobs checked ${tally.blobsChecked}`,
    );
  });
});

describe('registry faults through the CLI', { timeout: 180_000 }, () => {
  let ctx: string;
  let pullRef: string;
  let pullDigest: string;

  before(async () => {
    ctx = join(scratch, 'cli-ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
    await writeFile(join(ctx, 'hello.txt'), 'hello through faults\n');
    const direct = client(reg.host).c;
    const image = await smallImage(prng(SEED + 3), scratch, 'cli-pull');
    await direct.pushImage(image, [parseReference(`${reg.host}/faults/cli-pull:1`)], openLayer);
    await direct.close();
    pullRef = `${proxy.host}/faults/cli-pull:1`;
    pullDigest = image.digest;
  });

  const build = (tag: string): Promise<{ code: number; stderr: string }> =>
    kiln([
      'build',
      '-c',
      ctx,
      '-d',
      `${proxy.host}/faults/cli-push:${tag}`,
      '--insecure-registry',
      proxy.host,
      '--isolation',
      'chroot',
      '--work-dir',
      join(scratch, `cli-work-${tag}`),
      '--push-retry',
      '2',
    ]);
  const warm = (n: number): Promise<{ code: number; stdout: string; stderr: string }> =>
    kiln([
      'warm',
      '--image',
      pullRef,
      '--cache-dir',
      join(scratch, `cli-cache-${n}`),
      '--insecure-registry',
      proxy.host,
    ]);

  test('kiln build pushes through a dropped upload and a corrupted manifest PUT', async () => {
    proxy.inject({ match: MATCH['blob-put'], times: 1, fault: 'drop-mid-request' });
    proxy.inject({ match: MATCH['manifest-put'], times: 1, fault: 'flip-request-byte', fraction: 0.3 });
    const from = proxy.log.length;
    const r = await build('ok');
    proxy.clear();
    assert.equal(r.code, 0, r.stderr);
    const applied = proxy.log
      .slice(from)
      .map((e) => e.fault)
      .filter(Boolean);
    assert.deepEqual([...new Set(applied)].sort(), ['drop-mid-request', 'flip-request-byte']);
    const m = await fetch(`${reg.url}/v2/faults/cli-push/manifests/ok`, { headers: { accept: ACCEPT } });
    const digest = sha256(Buffer.from(await m.arrayBuffer()));
    const tags = new Map<string, TagState>([['ok', { allowed: new Set([digest]), mayBeAbsent: false }]]);
    await checkRepo(reg, 'faults/cli-push', tags);
    assert.match(r.stderr, new RegExp(digest.slice(7, 19)), 'the pushed digest is the one the registry has');
  });

  test('kiln build with a manifest corrupted on every PUT exits 5 naming the corruption', async () => {
    proxy.inject({ match: MATCH['manifest-put'], times: 1000, fault: 'flip-request-byte', fraction: 0.5 });
    const r = await build('bad');
    proxy.clear();
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /corrupted (on the way|between kiln and the registry)/);
    assert.doesNotMatch(r.stderr, /--format|at .*\.ts:\d+/);
    const m = await fetch(`${reg.url}/v2/faults/cli-push/manifests/ok`, { headers: { accept: ACCEPT } });
    const ok = sha256(Buffer.from(await m.arrayBuffer()));
    const tags = new Map<string, TagState>([
      ['ok', { allowed: new Set([ok]), mayBeAbsent: false }],
      ['bad', { allowed: new Set(), mayBeAbsent: true }],
    ]);
    await checkRepo(reg, 'faults/cli-push', tags);
  });

  test('kiln warm pulls through a manifest dropped twice and a truncated blob', async () => {
    proxy.inject({ match: MATCH['manifest-get'], times: 2, fault: 'drop-mid-body' });
    proxy.inject({ match: MATCH['blob-get'], times: 1, fault: 'truncate-body' });
    const from = proxy.log.length;
    const r = await warm(1);
    proxy.clear();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${pullRef} ${pullDigest}`);
    assert.equal(proxy.log.slice(from).filter((e) => e.fault).length, 3);
  });

  test('kiln warm with every manifest GET cut short exits 5, not 70', async () => {
    proxy.inject({ match: MATCH['manifest-get'], times: 1000, fault: 'truncate-body' });
    const r = await warm(2);
    proxy.clear();
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /manifest 1 .*failed 4 times/);
    assert.match(r.stderr, /connection to .* broke while the body was read/);
  });
});
