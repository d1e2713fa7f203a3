/**
 * The real `@actions/cache` client (v6, cache service v2: Twirp JSON + Azure Blob signed URLs) against
 * the loopback service in fixtures/actions-cache-server.ts: first the library directly (round trip,
 * restore-key prefix match, miss, bad token, the Azure SDK download path through the server as a
 * proxy), then kiln's bundled action (main.js + post.js run with `node` as the runner runs them: INPUT_*
 * variables, GITHUB_STATE carried to the post step as STATE_*, GITHUB_OUTPUT, the job summary) twice
 * against a loopback registry, the second run restoring the first run's cache and hitting it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as cache from '@actions/cache';
import { startActionsCacheServer, type ActionsCacheServer } from './fixtures/actions-cache-server.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

/** Sets variables for the duration of fn (the library reads process.env at call time). */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Captures what @actions/core writes to stdout while fn runs (and still passes it through). */
async function captureStdout<T>(fn: () => Promise<T>): Promise<{ value: T; out: string }> {
  const orig = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return (orig as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    return { value: await fn(), out };
  } finally {
    process.stdout.write = orig;
  }
}

/** Drops the ::debug:: / ::add-mask:: workflow commands @actions/core prints in-process (noise in TAP). */
function quietCoreCommands(): () => void {
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    // Only strings: the test runner's own protocol goes through stdout as binary chunks.
    if (typeof chunk !== 'string')
      return (orig as (c: Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    const kept = chunk
      .split(/(?<=\n)/)
      .filter((l) => !/^::(debug|add-mask)::/.test(l))
      .join('');
    if (kept === '') return true;
    return (orig as (c: string, ...r: unknown[]) => boolean)(kept, ...rest);
  }) as typeof process.stdout.write;
  return () => {
    process.stdout.write = orig;
  };
}

function fillDir(dir: string, files: Record<string, string | Buffer>): void {
  for (const [rel, data] of Object.entries(files)) {
    const p = join(dir, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, data);
  }
}

describe('@actions/cache v6 against the loopback cache service', () => {
  let srv: ActionsCacheServer;
  let work: string;
  let env: Record<string, string | undefined>;
  let restoreStdout: () => void = () => undefined;

  before(async () => {
    restoreStdout = quietCoreCommands();
    srv = await startActionsCacheServer();
    work = mkdtempSync(join(tmpdir(), 'kiln-ghcache-'));
    mkdirSync(join(work, 'ws'));
    mkdirSync(join(work, 'tmp'));
    env = {
      ...srv.env(),
      ACTIONS_CACHE_URL: undefined,
      ACTIONS_CACHE_MODE: undefined,
      GITHUB_WORKSPACE: join(work, 'ws'),
      RUNNER_TEMP: join(work, 'tmp'),
      RUNNER_DEBUG: undefined,
    };
  });
  after(async () => {
    restoreStdout();
    await srv?.close();
    rmSync(work, { recursive: true, force: true });
  });

  test('the client picks cache service v2 from the runner environment', async () => {
    await withEnv(env, async () => {
      assert.equal(cache.isFeatureAvailable(), true);
    });
    // Without ACTIONS_CACHE_SERVICE_V2 it would speak v1 (ACTIONS_CACHE_URL), which is not there.
    await withEnv({ ...env, ACTIONS_CACHE_SERVICE_V2: undefined }, async () => {
      assert.equal(cache.isFeatureAvailable(), false);
    });
  });

  test('saveCache then restoreCache round-trips the directory content', async () => {
    const dir = join(work, 'ws', 'layers');
    const big = Buffer.alloc(3 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24; // poorly compressible
    const files = { 'a.txt': 'alpha\n', 'sub/b.bin': big, 'sub/deeper/c': 'gamma' };
    fillDir(dir, files);
    await withEnv(env, async () => {
      const id = await cache.saveCache([dir], 'kiln-test-linux-abc-1-1');
      assert.ok(id > 0, `saveCache returned ${id}`);
      assert.equal(srv.entries.filter((e) => e.finalized).length, 1);
      // Entries are immutable: saving the same key again is refused (the client logs it, returns -1).
      fillDir(dir, { 'a.txt': 'changed\n' });
      assert.equal(await cache.saveCache([dir], 'kiln-test-linux-abc-1-1'), -1);

      rmSync(dir, { recursive: true, force: true });
      const { value: hit, out } = await captureStdout(() =>
        cache.restoreCache([dir], 'kiln-test-linux-abc-1-1', ['kiln-test-linux-']),
      );
      assert.equal(hit, 'kiln-test-linux-abc-1-1');
      assert.match(out, /Cache hit for: kiln-test-linux-abc-1-1/);
      for (const [rel, data] of Object.entries(files)) {
        assert.deepEqual(readFileSync(join(dir, rel)), Buffer.from(data), rel);
      }
    });
    const ops = new Set(srv.requests.map((r) => r.op));
    for (const op of [
      'CreateCacheEntry',
      'blob:PutBlob',
      'FinalizeCacheEntryUpload',
      'GetCacheEntryDownloadURL',
    ]) {
      assert.ok(ops.has(op), `${op} in ${[...ops].join(', ')}`);
    }
    assert.ok(srv.requests.some((r) => r.op === 'blob:GetBlob' && r.status === 200));
  });

  test('restore keys match by prefix, newest first; other versions and misses give undefined', async () => {
    const dir = join(work, 'ws', 'prefix');
    await withEnv(env, async () => {
      fillDir(dir, { v: 'old' });
      assert.ok((await cache.saveCache([dir], 'kiln-p-linux-h1-run1-1')) > 0);
      fillDir(dir, { v: 'new' });
      assert.ok((await cache.saveCache([dir], 'kiln-p-linux-h1-run2-1')) > 0);
      fillDir(dir, { v: 'other-dockerfile' });
      assert.ok((await cache.saveCache([dir], 'kiln-p-linux-h2-run3-1')) > 0);

      const cases: [string, string, string[], string | undefined, string | undefined][] = [
        ['newest for the first restore key', 'kiln-p-linux-h1-run9-1', ['kiln-p-linux-h1-', 'kiln-p-linux-'], 'kiln-p-linux-h1-run2-1', 'new'],
        ['exact key beats newer prefix matches', 'kiln-p-linux-h1-run1-1', ['kiln-p-linux-'], 'kiln-p-linux-h1-run1-1', 'old'],
        ['second restore key when the first misses', 'kiln-p-linux-h9-run9-1', ['kiln-p-linux-h9-', 'kiln-p-linux-'], 'kiln-p-linux-h2-run3-1', 'other-dockerfile'],
        ['no match', 'kiln-q-linux-h1-run1-1', ['kiln-q-linux-'], undefined, undefined],
      ]; // prettier-ignore
      for (const [name, key, restoreKeys, want, content] of cases) {
        rmSync(dir, { recursive: true, force: true });
        const hit = await cache.restoreCache([dir], key, restoreKeys);
        assert.equal(hit, want, name);
        if (content === undefined) assert.equal(existsSync(dir), false, name);
        else assert.equal(readFileSync(join(dir, 'v'), 'utf8'), content, name);
      }
      // The version covers the paths: the same key saved for another path is not restored here.
      rmSync(dir, { recursive: true, force: true });
      assert.equal(
        await cache.restoreCache([join(work, 'ws', 'elsewhere')], 'kiln-p-linux-h1-run1-1'),
        undefined,
      );
    });
  });

  test('a wrong runtime token is refused: save returns -1 and restore misses', async () => {
    const dir = join(work, 'ws', 'denied');
    fillDir(dir, { x: 'y' });
    const before = srv.entries.length;
    await withEnv({ ...env, ACTIONS_RUNTIME_TOKEN: 'not-the-token' }, async () => {
      assert.equal(await cache.saveCache([dir], 'kiln-denied-1'), -1);
      assert.equal(await cache.restoreCache([dir], 'kiln-test-linux-abc-1-1'), undefined);
    });
    assert.equal(srv.entries.length, before);
    assert.ok(srv.requests.some((r) => r.status === 401));
  });

  test('the Azure SDK download path (a *.blob.core.windows.net URL) through the server as proxy', async () => {
    const psrv = await startActionsCacheServer({ blobHost: 'blob.core.windows.net' });
    const dir = join(work, 'ws', 'sdk');
    const big = Buffer.alloc(5 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 40503) >>> 7;
    try {
      const penv = {
        ...env,
        ...psrv.env(),
        HTTP_PROXY: `http://${psrv.host}`,
        http_proxy: `http://${psrv.host}`,
        HTTPS_PROXY: undefined,
        https_proxy: undefined,
        NO_PROXY: '127.0.0.1',
        no_proxy: '127.0.0.1',
      };
      await withEnv(penv, async () => {
        fillDir(dir, { 'big.bin': big, 'small.txt': 'small' });
        assert.ok((await cache.saveCache([dir], 'kiln-sdk-1')) > 0);
        rmSync(dir, { recursive: true, force: true });
        assert.equal(await cache.restoreCache([dir], 'kiln-sdk-2', ['kiln-sdk-']), 'kiln-sdk-1');
      });
      assert.deepEqual(readFileSync(join(dir, 'big.bin')), big);
      assert.equal(readFileSync(join(dir, 'small.txt'), 'utf8'), 'small');
      const ops = psrv.requests.map((r) => `${r.op} ${r.status}`);
      assert.ok(ops.includes('blob:GetBlobProperties 200'), ops.join(', '));
      assert.ok(
        ops.some((o) => /^blob:GetBlob 20[06]$/.test(o)),
        ops.join(', '),
      );
    } finally {
      await psrv.close();
    }
  });
});

/** `name<<delim ... delim` (and `name=value`) entries of a GITHUB_OUTPUT / GITHUB_STATE file. */
/** The paths in a cache entry's archive (tar, zstd or gzip: GNU tar tells which from the file). */
function listArchive(data: Buffer): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cache-archive-'));
  try {
    writeFileSync(join(dir, 'entry.tar'), data);
    const r = spawnSync('tar', ['-tf', join(dir, 'entry.tar')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseCommandFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(path)) return out;
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const m = /^([^=<]+)<<(.+)$/.exec(line);
    if (m) {
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i]!);
      out[m[1]!] = value.join('\n');
    } else if (line.includes('=')) {
      out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
    }
  }
  return out;
}

interface StepRun {
  code: number;
  out: string;
}

function runNode(script: string, env: NodeJS.ProcessEnv, cwd: string): Promise<StepRun> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [script], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (c) => resolvePromise({ code: c ?? 1, out }));
  });
}

describe('kiln action main + post with the real @actions/cache client', { timeout: 600_000 }, () => {
  let srv: ActionsCacheServer;
  let reg: TestRegistry;
  let work: string;
  let dist: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'kiln-action-cache-'));
    dist = join(work, 'dist');
    await execFileP(process.execPath, [join(ROOT, 'scripts/bundle.mjs'), dist], { cwd: ROOT });
    srv = await startActionsCacheServer();
    reg = await startRegistry();
    await pushBusyboxImage(reg, 'base/busybox', 'latest');
  });
  after(async () => {
    await srv?.close();
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** One job on a fresh runner: a new RUNNER_TEMP (so no kiln-cache dir), main then post. */
  async function job(
    runId: string,
    app: string,
    extraEnv: Record<string, string> = {},
  ): Promise<{ main: StepRun; post: StepRun; outputs: Record<string, string>; summary: string }> {
    // RUNNER_TEMP is the same path on every run of a hosted runner (/home/runner/work/_temp), and the
    // cache entry's version hashes the cached path: keep the path, wipe its content.
    const runner = join(work, 'runner');
    const temp = join(runner, 'temp');
    const files = join(work, `files-${runId}`);
    rmSync(runner, { recursive: true, force: true });
    mkdirSync(temp, { recursive: true });
    mkdirSync(files, { recursive: true });
    const f = {
      GITHUB_STATE: join(files, 'state'),
      GITHUB_OUTPUT: join(files, 'output'),
      GITHUB_STEP_SUMMARY: join(files, 'summary.md'),
      GITHUB_ENV: join(files, 'env'),
      GITHUB_PATH: join(files, 'path'),
    };
    for (const p of Object.values(f)) writeFileSync(p, '');
    const inputs: Record<string, string> = {
      context: app,
      file: '',
      tags: `${reg.host}/app/cached:${runId}`,
      'build-args': '',
      target: '',
      push: 'true',
      // The provenance build-push-action adds by default names the run (id, attempt), so two runs'
      // pushed indexes differ by design; this test is about the layer cache, compared on the image.
      provenance: 'false',
      labels: '',
      secrets: '',
      platforms: '',
      isolation: 'auto',
      cache: 'true',
      'cache-key': 'kiln',
      'cache-dir': '',
      'cache-repo': '',
      reproducible: 'true',
      registry: '',
      username: '',
      password: '',
      'insecure-registries': reg.host,
      'extra-args': '',
    };
    const base: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(base)) {
      if (/^(INPUT_|STATE_|ACTIONS_|GITHUB_|RUNNER_)/.test(k) || k === 'KILN_CLI') delete base[k];
    }
    const env: NodeJS.ProcessEnv = {
      ...base,
      ...srv.env(),
      ...f,
      GITHUB_ACTIONS: 'true',
      CI: 'true',
      GITHUB_WORKSPACE: work,
      GITHUB_RUN_ID: runId,
      GITHUB_RUN_ATTEMPT: '1',
      RUNNER_TEMP: temp,
      RUNNER_OS: 'Linux',
      FORCE_COLOR: '0',
      NO_COLOR: '1',
      DOCKER_CONFIG: join(files, 'docker-config'),
      ...Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v])),
      ...extraEnv,
    };
    const main = await runNode(join(dist, 'action', 'main.js'), env, work);
    // The runner hands the main step's saveState values to the post step as STATE_<name>.
    const state = parseCommandFile(f.GITHUB_STATE);
    const postEnv: NodeJS.ProcessEnv = { ...env };
    for (const [k, v] of Object.entries(state)) postEnv[`STATE_${k}`] = v;
    const post = await runNode(join(dist, 'action', 'post.js'), postEnv, work);
    return {
      main,
      post,
      outputs: parseCommandFile(f.GITHUB_OUTPUT),
      summary: readFileSync(f.GITHUB_STEP_SUMMARY, 'utf8'),
    };
  }

  test('run 1 saves the layer cache through the service; run 2 on a fresh runner restores and hits it', async () => {
    const app = join(work, 'app');
    fillDir(app, {
      Dockerfile: [
        `FROM ${reg.host}/base/busybox:latest`,
        'RUN echo built > /built.txt',
        'COPY hello.txt /hello.txt',
        '',
      ].join('\n'),
      'hello.txt': 'hello from the cached action\n',
    });

    const r1 = await job('101', app);
    assert.equal(r1.main.code, 0, r1.main.out);
    assert.doesNotMatch(r1.main.out, /^::error/m, r1.main.out);
    assert.match(r1.main.out, /kiln cache: no entry yet/, r1.main.out);
    assert.match(r1.outputs.digest ?? '', /^sha256:[a-f0-9]{64}$/, r1.main.out);
    assert.match(r1.post.out, /kiln post: cache saved as kiln-linux-\S+-101-1 \(id \d+\)/, r1.post.out);
    assert.doesNotMatch(r1.post.out, /^::(warning|error)/m, r1.post.out);
    const saved = srv.entries.filter((e) => e.finalized);
    assert.equal(saved.length, 1);
    assert.ok(saved[0]!.sizeBytes > 0);
    // The build kept extracted trees in the cache dir; the entry holds the blobs, not the trees.
    const cacheDir = join(work, 'runner', 'temp', 'kiln-cache');
    assert.ok(existsSync(join(cacheDir, 'trees')), `run 1 kept trees in ${cacheDir}`);
    const listing = listArchive(srv.archive(saved[0]!));
    assert.ok(
      listing.some((p) => /kiln-cache\/blobs\//.test(p)),
      listing.join('\n'),
    );
    assert.ok(!listing.some((p) => /kiln-cache\/trees(\/|$)/.test(p)), 'trees/ left out of the cache entry');

    const r2 = await job('102', app);
    assert.equal(r2.main.code, 0, r2.main.out);
    assert.doesNotMatch(r2.main.out, /^::(error|warning)/m, r2.main.out);
    assert.match(r2.main.out, new RegExp(`Cache hit for restore-key: ${saved[0]!.key}`), r2.main.out);
    assert.match(r2.main.out, new RegExp(`kiln cache restored from ${saved[0]!.key}`), r2.main.out);
    const meta = JSON.parse(r2.outputs.metadata ?? '{}') as Record<string, unknown>;
    const steps = (meta['kiln.result'] as { steps: { instruction: string; cache: string }[] }).steps;
    const run = steps.find((s) => s.instruction.startsWith('RUN'));
    assert.equal(run?.cache, 'hit', JSON.stringify(steps));
    assert.match(r2.summary, /<td>hit<\/td>/);
    assert.equal(
      r2.outputs.digest,
      r1.outputs.digest,
      'a reproducible build from the cache gives the same image',
    );
    // Everything came from the cache: the directory did not change, so nothing new was saved.
    assert.match(r2.post.out, /kiln post: cache directory unchanged, not saved/, r2.post.out);
    assert.equal(srv.entries.filter((e) => e.finalized).length, 1);
    assert.ok(readdirSync(work).length > 0);
  });

  test('no cache service (GHES without one, act): one warning, no request, no retries', async () => {
    const app = join(work, 'app-noservice');
    fillDir(app, { Dockerfile: `FROM ${reg.host}/base/busybox:latest\nRUN echo alone > /a.txt\n` });
    const before = srv.requests.length;
    const t0 = Date.now();
    const r = await job('301', app, { ACTIONS_RESULTS_URL: '', ACTIONS_CACHE_URL: '' });
    const ms = Date.now() - t0;
    assert.equal(r.main.code, 0, r.main.out);
    const warnings = r.main.out.match(/^::warning.*$/gm) ?? [];
    assert.equal(warnings.length, 1, r.main.out);
    assert.match(warnings[0]!, /no GitHub Actions cache service here/);
    assert.doesNotMatch(r.main.out + r.post.out, /retry|Failed to restore|Failed to save/i);
    assert.match(r.outputs.digest ?? '', /^sha256:[a-f0-9]{64}$/);
    assert.equal(r.post.code, 0, r.post.out);
    assert.doesNotMatch(r.post.out, /^::(warning|error)/m, r.post.out);
    assert.equal(srv.requests.length, before, 'no request reached a cache service');
    console.log(`# no-cache-service job (main + post): ${ms} ms`);
  });

  test('a cache service that refuses the token costs the cache, never the job', async () => {
    const app = join(work, 'app-denied');
    fillDir(app, {
      Dockerfile: `FROM ${reg.host}/base/busybox:latest\nRUN echo denied > /d.txt\n`,
    });
    const before = srv.entries.length;
    const r = await job('201', app, { ACTIONS_RUNTIME_TOKEN: 'revoked' });
    assert.equal(r.main.code, 0, r.main.out);
    assert.doesNotMatch(r.main.out, /^::error/m, r.main.out);
    assert.match(r.main.out, /^::warning::Failed to restore: .*401/m, r.main.out);
    assert.match(r.main.out, /kiln cache: no entry yet/);
    assert.match(r.outputs.digest ?? '', /^sha256:[a-f0-9]{64}$/);
    assert.equal(r.post.code, 0, r.post.out);
    assert.match(r.post.out, /kiln post: cache not saved as kiln-linux-\S+-201-1/, r.post.out);
    assert.doesNotMatch(r.post.out, /cache saved as/);
    assert.equal(srv.entries.length, before);
  });
});
