/**
 * The layer cache through the real CLI (child processes) on a busybox base: which steps hit and which
 * miss (and why) after each kind of change, from the `(cached, dir|repo)` / `(cache miss: …)` log
 * lines and the resulting digests; corruption, concurrency, tar round trips, the lazy base (no base
 * layer download when every step hits, seen on a proxy in front of the registry) and --cache-repo.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kiln } from '../helpers/cli.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import type { FaultProxy } from '../helpers/fault-proxy.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;

type Status = 'hit' | 'miss' | 'ran';
interface StepLine {
  text: string;
  status: Status;
  from?: string;
  reason?: string;
}

/** The step lines of a build log (RUN/COPY/ADD/WORKDIR and friends), with their cache status. */
function stepLines(log: string): StepLine[] {
  const out: StepLine[] = [];
  for (const line of log.split('\n')) {
    const m =
      /\[[^\]]+\] ((?:RUN|COPY|ADD|WORKDIR)\b.*?)(?: \(cached, (dir|repo)\)| \(cache miss: (.*)\))?$/.exec(
        line,
      );
    if (!m) continue;
    if (m[2]) out.push({ text: m[1]!, status: 'hit', from: m[2] });
    else if (m[3] !== undefined) out.push({ text: m[1]!, status: 'miss', reason: m[3] });
    else out.push({ text: m[1]!, status: 'ran' });
  }
  return out;
}

let work: string;
let reg: TestRegistry | undefined;
let proxy: FaultProxy | undefined;
let baseLayer = '';
let n = 0;

/** The Dockerfile: 9 cacheable steps; `$USED` is first read by the 4th. */
function dockerfile(base: string): string {
  return `FROM ${base}
ARG USED
COPY a.txt /app/a.txt
COPY b.txt /app/b.txt
COPY dir/ /app/dir/
RUN echo "used=$USED" > /app/used
RUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo ok > /app/secret-ok
COPY c.txt /app/c.txt
WORKDIR /app
RUN cat /app/c.txt /app/a.txt > /app/joined && ls /app > /app/list
`;
}
const STEPS = 8;

interface Fixture {
  ctx: string;
  cache: string;
  secret: string;
  base: string;
}

async function fixture(baseTag = '1'): Promise<Fixture> {
  n++;
  const ctx = join(work, `ctx-${n}`);
  await mkdir(join(ctx, 'dir'), { recursive: true });
  const base = `${proxy!.host}/base/busybox:${baseTag}`;
  await writeFile(join(ctx, 'Dockerfile'), dockerfile(base));
  await writeFile(join(ctx, '.dockerignore'), 'dir/*.log\n');
  await writeFile(join(ctx, 'a.txt'), 'a\n');
  await writeFile(join(ctx, 'b.txt'), 'b\n');
  await writeFile(join(ctx, 'c.txt'), 'c\n');
  await writeFile(join(ctx, 'dir', 'keep.txt'), 'keep\n');
  await writeFile(join(ctx, 'dir', 'noise.log'), 'noise 1\n');
  const secret = join(work, `secret-${n}`);
  await writeFile(secret, `KILN-SECRET-VALUE-${n}-first`);
  return { ctx, cache: join(work, `cache-${n}`), secret, base };
}

interface Built {
  digest: string;
  steps: StepLine[];
  log: string;
}

async function build(
  f: Fixture,
  extra: string[] = [],
  opts: { env?: Record<string, string>; cacheDir?: string; args?: string[] } = {},
): Promise<Built> {
  n++;
  const r = await kiln(
    [
      'build',
      '-c',
      f.ctx,
      '-d',
      `${proxy!.host}/app/out:${n}`,
      '--insecure-registry',
      proxy!.host,
      '--isolation',
      'chroot',
      '--work-dir',
      join(work, `w-${n}`),
      '--reproducible',
      '--secret',
      `id=tok,src=${f.secret}`,
      ...(opts.args ?? ['--build-arg', 'USED=1']),
      ...(opts.cacheDir === '' ? [] : ['--cache-dir', opts.cacheDir ?? f.cache]),
      ...extra,
    ],
    opts.env,
  );
  assert.equal(r.code, 0, r.stderr);
  const digest = r.stdout.trim();
  assert.match(digest, /^sha256:[a-f0-9]{64}$/);
  return { digest, steps: stepLines(r.stderr), log: r.stderr };
}

function statuses(b: Built): string {
  return b.steps.map((s) => (s.status === 'hit' ? `hit:${s.from}` : s.status)).join(' ');
}

function expectAll(b: Built, status: Status, from = 'dir'): void {
  assert.equal(b.steps.length, STEPS, b.log);
  for (const s of b.steps) {
    assert.equal(s.status, status, `${s.text}: ${statuses(b)}\n${b.log}`);
    if (status === 'hit') assert.equal(s.from, from, s.text);
  }
}

/** Hits before step `first` (0-based), misses from it on; the first miss gives `reason`. */
function expectMissFrom(b: Built, first: number, reason: string): void {
  assert.equal(b.steps.length, STEPS, b.log);
  b.steps.forEach((s, i) =>
    assert.equal(s.status, i < first ? 'hit' : 'miss', `${i} ${s.text}: ${statuses(b)}`),
  );
  assert.equal(b.steps[first]!.reason, reason);
}

before(async () => {
  if (!isRoot) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-cache-'));
  await chmod(work, 0o755);
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.host);
  await pushBusyboxImage(reg, 'base/busybox', '1');
  const r = await fetch(`${reg.url}/v2/base/busybox/manifests/1`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const m = (await r.json()) as { layers: { digest: string }[] };
  baseLayer = m.layers[0]!.digest;
});

after(async () => {
  await proxy?.stop();
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('layer cache', { skip: !isRoot && 'needs root (chroot rung)' }, () => {
  let main: Fixture;
  let cold: Built;

  test('cold build: every step misses ("not built before")', { timeout: 120_000 }, async () => {
    main = await fixture();
    cold = await build(main);
    expectAll(cold, 'miss');
    for (const s of cold.steps) assert.equal(s.reason, 'not built before');
  });

  test('no-change rebuild: every step hits, same manifest digest', { timeout: 120_000 }, async () => {
    const b = await build(main);
    expectAll(b, 'hit');
    assert.equal(b.digest, cold.digest);
  });

  test('lazy base: a fully cached build never downloads the base layer', { timeout: 120_000 }, async () => {
    const isBaseGet = (e: { method: string; path: string }): boolean =>
      e.method === 'GET' && e.path.includes(`/blobs/${baseLayer}`);
    // The cold build did download it (so the check below can see a download).
    assert.ok(proxy!.log.some(isBaseGet), 'the cold build fetched the base layer through the proxy');
    proxy!.log.length = 0;
    const b = await build(main, [], { env: { KILN_KEEP_WORKDIR: '1' } });
    expectAll(b, 'hit');
    assert.equal(b.digest, cold.digest);
    assert.ok(proxy!.log.length > 0, 'the build talked to the registry through the proxy');
    assert.deepEqual(proxy!.log.filter(isBaseGet), [], 'no GET of the base layer blob');
    // And nothing was extracted: the stage rootfs in the kept work dir is empty.
    const wdir = join(work, `w-${n}`);
    const builds = (await readdir(wdir)).filter((d) => d.startsWith('build-'));
    assert.equal(builds.length, 1);
    const rootfs = join(wdir, builds[0]!, 'stages', '0', 'rootfs');
    assert.deepEqual(await readdir(rootfs), []);
  });

  test(
    'a changed COPY source misses from that step with "source files changed"',
    { timeout: 120_000 },
    async () => {
      const f = await fixture();
      const c0 = await build(f);
      await writeFile(join(f.ctx, 'b.txt'), 'b changed\n');
      const b = await build(f);
      expectMissFrom(b, 1, 'source files changed');
      assert.equal(b.steps[2]!.reason, 'an earlier step or the base image changed');
      assert.notEqual(b.digest, c0.digest);
      const again = await build(f);
      expectAll(again, 'hit');
      assert.equal(again.digest, b.digest);
    },
  );

  test('a changed file excluded by .dockerignore: every step hits', { timeout: 120_000 }, async () => {
    await writeFile(join(main.ctx, 'dir', 'noise.log'), 'noise 2, different\n');
    const b = await build(main);
    expectAll(b, 'hit');
    assert.equal(b.digest, cold.digest);
  });

  test(
    'build args: an undeclared one changes nothing; a used one misses from its first use',
    { timeout: 180_000 },
    async () => {
      const unused = await build(main, [], { args: ['--build-arg', 'USED=1', '--build-arg', 'NOBODY=x'] });
      expectAll(unused, 'hit');
      assert.equal(unused.digest, cold.digest);
      const unused2 = await build(main, [], { args: ['--build-arg', 'USED=1', '--build-arg', 'NOBODY=y'] });
      expectAll(unused2, 'hit');
      const used = await build(main, [], { args: ['--build-arg', 'USED=2'] });
      expectMissFrom(used, 3, 'build args or environment changed');
      assert.notEqual(used.digest, cold.digest);
      // Back to the first value: all cached again.
      const back = await build(main);
      expectAll(back, 'hit');
      assert.equal(back.digest, cold.digest);
    },
  );

  test(
    'a new secret value hits, and no secret ever lands in the cache dir',
    { timeout: 120_000 },
    async () => {
      const first = await readFile(main.secret, 'utf8');
      await writeFile(main.secret, 'KILN-SECRET-VALUE-second-one');
      const b = await build(main);
      expectAll(b, 'hit');
      assert.equal(b.digest, cold.digest);
      for (const value of [first, 'KILN-SECRET-VALUE-second-one', 'KILN-SECRET-VALUE']) {
        const r = await execFileP('grep', ['-r', '-a', '-l', '-F', value, main.cache]).catch(
          (e: { code?: number; stdout?: string }) => e,
        );
        assert.equal((r as { code?: number }).code, 1, `grep found "${value}" in ${String(r.stdout)}`);
      }
      // The blobs are gzip: look inside them too.
      const blobs = join(main.cache, 'blobs');
      for (const name of await readdir(blobs)) {
        const { stdout } = await execFileP('sh', [
          '-c',
          `gzip -dc '${join(blobs, name)}' | grep -a -c KILN-SECRET || true`,
        ]);
        assert.equal(stdout.trim(), '0', `secret inside blob ${name}`);
      }
    },
  );

  test('a new base digest under the same tag: every step misses', { timeout: 180_000 }, async () => {
    await pushBusyboxImage(reg!, 'base/busybox', 'moving');
    const f = await fixture('moving');
    await build(f);
    expectAll(await build(f), 'hit');
    // A different image under the same tag (busybox plus one file), built by kiln without a cache.
    const other = join(work, 'other-base');
    await mkdir(other, { recursive: true });
    await writeFile(join(other, 'Dockerfile'), `FROM ${proxy!.host}/base/busybox:1\nRUN echo v2 > /marker\n`);
    const r = await kiln([
      'build',
      '-c',
      other,
      '-d',
      `${proxy!.host}/base/busybox:moving`,
      '--insecure-registry',
      proxy!.host,
      '--isolation',
      'chroot',
      '--work-dir',
      join(work, 'w-other'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const b = await build(f);
    expectAll(b, 'miss');
    assert.equal(b.steps[0]!.reason, 'an earlier step or the base image changed');
  });

  test(
    'a corrupted cache blob is detected, the step rebuilt and the entry rewritten',
    { timeout: 180_000 },
    async () => {
      const f = await fixture();
      const c0 = await build(f);
      // The layer of `COPY b.txt` (the second step): find its entry's blob.
      const entries = join(f.cache, 'entries');
      const byDigest = new Map<string, string>();
      for (const e of await readdir(entries)) {
        const entry = JSON.parse(await readFile(join(entries, e), 'utf8')) as {
          createdBy: string;
          layer?: { digest: string };
        };
        if (entry.layer) byDigest.set(entry.createdBy, entry.layer.digest);
      }
      const target = [...byDigest.entries()].find(([by]) => by.includes('b.txt'));
      assert.ok(target, `an entry for COPY b.txt among ${[...byDigest.keys()].join(' | ')}`);
      const blob = join(f.cache, 'blobs', target[1].replace(/^sha256:/, ''));
      const bytes = await readFile(blob);
      const mid = Math.floor(bytes.length / 2);
      bytes[mid] = (bytes[mid] ?? 0) ^ 0xff;
      await writeFile(blob, bytes);

      const built = await build(f);
      // Blobs are checked while the build goes on: the corrupt one is found, its entry dropped, and
      // the plan runs again (src/executor/executor.ts). The steps that count are the second run's.
      const at = built.log.search(/is corrupt/);
      assert.ok(at >= 0, built.log);
      const b = { ...built, steps: stepLines(built.log.slice(at)) };
      assert.equal(b.steps.length, STEPS, built.log);
      assert.equal(b.steps[0]!.status, 'hit');
      assert.equal(b.steps[1]!.status, 'miss', statuses(b));
      assert.equal(b.steps[1]!.reason, 'entry missing or expired');
      // Later steps keep their keys, so they still hit (on top of the rebuilt layer).
      for (const s of b.steps.slice(2)) assert.equal(s.status, 'hit', `${s.text}: ${statuses(b)}`);
      assert.equal(b.digest, c0.digest, 'the rebuilt layer is the same (reproducible)');
      const fixed = await readFile(blob);
      assert.equal(fixed.length, bytes.length);
      assert.ok(!fixed.equals(bytes), 'the blob was rewritten');
      const next = await build(f);
      expectAll(next, 'hit');
      assert.equal(next.digest, c0.digest);
    },
  );

  test(
    'two concurrent builds sharing one cache dir both succeed; a third hits everywhere',
    { timeout: 180_000 },
    async () => {
      const f = await fixture();
      const [x, y] = await Promise.all([build(f), build(f)]);
      assert.equal(x.digest, y.digest);
      for (const name of await readdir(join(f.cache, 'entries')))
        assert.ok(!name.includes('.tmp-'), `leftover temp file ${name}`);
      for (const name of await readdir(join(f.cache, 'blobs')))
        assert.ok(!name.includes('.tmp-'), `leftover temp file ${name}`);
      const z = await build(f);
      expectAll(z, 'hit');
      assert.equal(z.digest, x.digest);
    },
  );

  test('the cache dir survives tar, delete and untar', { timeout: 120_000 }, async () => {
    const f = await fixture();
    const c0 = await build(f);
    const tarball = join(work, `cache-${n}.tar`);
    await execFileP('tar', ['-C', work, '-cf', tarball, f.cache.slice(work.length + 1)]);
    await rm(f.cache, { recursive: true });
    await execFileP('tar', ['-C', work, '-xf', tarball]);
    const b = await build(f);
    expectAll(b, 'hit');
    assert.equal(b.digest, c0.digest);
  });

  test('--cache-repo: a fresh cache dir hits from the repository', { timeout: 180_000 }, async () => {
    const f = await fixture();
    const repo = ['--cache-repo', `${proxy!.host}/app/cache`];
    const c0 = await build(f, repo);
    expectAll(c0, 'miss');
    const fresh = join(work, `fresh-cache-${n}`);
    const b = await build(f, repo, { cacheDir: fresh });
    expectAll(b, 'hit', 'repo');
    assert.equal(b.digest, c0.digest);
    // Copied into the directory on the way: the next build hits from there.
    const c = await build(f, repo, { cacheDir: fresh });
    expectAll(c, 'hit', 'dir');
    // And the repository alone (no directory) also serves every step.
    const only = await build(f, repo, { cacheDir: '' });
    expectAll(only, 'hit', 'repo');
    assert.equal(only.digest, c0.digest);
  });

  test(
    '--cache-run-layers=false runs RUN steps again while COPY steps hit',
    { timeout: 120_000 },
    async () => {
      const flag = ['--cache-run-layers=false'];
      const first = await build(main, flag);
      assert.equal(first.steps.length, STEPS);
      // Before the first RUN the keys are those of the cached build; after it the chain goes on from
      // the uncached RUN, so the first such build misses there once.
      first.steps.forEach((s, i) => {
        const want = s.text.startsWith('RUN') ? 'ran' : i < 3 ? 'hit' : 'miss';
        assert.equal(s.status, want, `${s.text}: ${statuses(first)}`);
      });
      assert.equal(first.digest, cold.digest);
      const b = await build(main, flag);
      for (const s of b.steps) {
        if (s.text.startsWith('RUN')) assert.equal(s.status, 'ran', `${s.text}: ${statuses(b)}`);
        else assert.equal(s.status, 'hit', `${s.text}: ${statuses(b)}`);
      }
      // The last RUN read /app/c.txt from a COPY that hit after a RUN ran: the image is the cold one.
      assert.equal(b.digest, cold.digest);
    },
  );
});
