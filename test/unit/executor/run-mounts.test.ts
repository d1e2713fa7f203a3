import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveRunMounts, type MountContext } from '../../../src/executor/run-mounts.ts';
import { KilnError } from '../../../src/util/errors.ts';

let base = '';
let ctx: MountContext;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'kiln-mounts-'));
  for (const d of ['context/src', 'stage/opt', 'cache', 'tmp']) mkdirSync(join(base, d), { recursive: true });
  writeFileSync(join(base, 'context/src/a.txt'), 'context file');
  writeFileSync(join(base, 'stage/opt/tool'), 'stage file');
  writeFileSync(join(base, 'token.txt'), 's3cr3t-value\n');
  ctx = {
    secrets: [
      { id: 'tok', src: join(base, 'token.txt') },
      { id: 'api', env: 'KILN_TEST_API_KEY' },
    ],
    sourceRoot: async (from) => join(base, from === undefined ? 'context' : 'stage'),
    cacheDir: join(base, 'cache'),
    tmpDir: join(base, 'tmp'),
    workdir: '/work',
    position: { file: 'Dockerfile', line: 3 },
    processEnv: { KILN_TEST_API_KEY: 'from-env-123' },
  };
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

test('a secret file is copied to a private temp file, bound read-only at /run/secrets/<id>, and removed by cleanup', async () => {
  const r = await resolveRunMounts(
    [{ type: 'secret', id: 'tok', required: true, mode: 0o400, uid: 0, gid: 0 }],
    ctx,
  );
  const m = r.mounts[0]!;
  assert.equal(m.type, 'bind');
  assert.equal(m.target, '/run/secrets/tok');
  assert.ok(m.type === 'bind' && m.readonly);
  const src = m.type === 'bind' ? m.source : '';
  assert.equal(readFileSync(src, 'utf8'), 's3cr3t-value\n');
  assert.equal(statSync(src).mode & 0o777, 0o400);
  assert.deepEqual(r.secretValues, ['s3cr3t-value']);
  await r.cleanup();
  assert.equal(existsSync(src), false);
});

test('a secret can be exposed as an env var only', async () => {
  const r = await resolveRunMounts(
    [{ type: 'secret', id: 'api', env: 'API_KEY', required: false, mode: 0o400, uid: 0, gid: 0 }],
    ctx,
  );
  assert.deepEqual(r.env, ['API_KEY=from-env-123']);
  assert.equal(r.mounts.length, 0);
});

test('a required secret that was not given fails with a hint, an optional one is skipped', async () => {
  await assert.rejects(
    resolveRunMounts([{ type: 'secret', id: 'nope', required: true, mode: 0o400, uid: 0, gid: 0 }], ctx),
    (e: unknown) =>
      e instanceof KilnError && e.code === 'SECRET_MISSING' && /--secret id=nope/.test(e.hint ?? ''),
  );
  const r = await resolveRunMounts(
    [{ type: 'secret', id: 'nope', required: false, mode: 0o400, uid: 0, gid: 0 }],
    ctx,
  );
  assert.equal(r.mounts.length, 0);
});

test('cache mounts persist under their id and are seeded once; relative targets use WORKDIR', async () => {
  const req = {
    type: 'cache' as const,
    id: 'npm',
    target: '.npm',
    readonly: false,
    sharing: 'shared' as const,
    mode: 0o755,
    uid: 1000,
    gid: 1000,
  };
  const a = await resolveRunMounts([req], ctx);
  const dirA = a.mounts[0]!.type === 'bind' ? a.mounts[0]!.source : '';
  assert.equal(a.mounts[0]!.target, '/work/.npm');
  assert.equal(statSync(dirA).uid, 1000);
  writeFileSync(join(dirA, 'kept'), 'x');
  const b = await resolveRunMounts([req], ctx);
  assert.equal(b.mounts[0]!.type === 'bind' ? b.mounts[0]!.source : '', dirA);
  assert.ok(existsSync(join(dirA, 'kept')));
  const other = await resolveRunMounts([{ ...req, id: 'pip' }], ctx);
  assert.notEqual(other.mounts[0]!.type === 'bind' ? other.mounts[0]!.source : '', dirA);
});

test('binds are read-only by default; rw binds get a throwaway copy', async () => {
  const ro = await resolveRunMounts([{ type: 'bind', target: '/src', source: 'src', readwrite: false }], ctx);
  assert.deepEqual(ro.mounts[0], {
    type: 'bind',
    source: join(base, 'context/src'),
    target: '/src',
    readonly: true,
  });
  const rw = await resolveRunMounts(
    [{ type: 'bind', target: '/o', source: '/opt', from: 'builder', readwrite: true }],
    ctx,
  );
  const copy = rw.mounts[0]!.type === 'bind' ? rw.mounts[0]!.source : '';
  assert.notEqual(copy, join(base, 'stage/opt'));
  assert.equal(readFileSync(join(copy, 'tool'), 'utf8'), 'stage file');
  await rw.cleanup();
  assert.equal(existsSync(copy), false);
});

test('bind sources cannot escape their root', async () => {
  mkdirSync(join(base, 'context/etc'));
  const r = await resolveRunMounts(
    [{ type: 'bind', target: '/x', source: '../../../etc', readwrite: false }],
    ctx,
  );
  assert.equal(r.mounts[0]!.type === 'bind' ? r.mounts[0]!.source : '', join(base, 'context/etc'));
});

test('a missing bind source, or one .dockerignore hides, is a context error at the RUN line', async () => {
  for (const [source, skip, re] of [
    ['nope', undefined, /source nope is not in the build context$/],
    ['src/a.txt', (p: string) => p.endsWith('a.txt'), /\.dockerignore excludes it/],
  ] as const) {
    await assert.rejects(
      resolveRunMounts([{ type: 'bind', target: '/x', source, readwrite: false }], {
        ...ctx,
        ...(skip ? { contextSkip: skip } : {}),
      }),
      (e: unknown) =>
        e instanceof KilnError && e.category === 'context' && e.position?.line === 3 && re.test(e.message),
    );
  }
});

test('a context bind is a copy without what .dockerignore hides', async () => {
  writeFileSync(join(base, 'context/src/secret.txt'), 'hidden');
  const r = await resolveRunMounts([{ type: 'bind', target: '/ctx', source: '', readwrite: false }], {
    ...ctx,
    contextSkip: (p) => p.endsWith('secret.txt'),
  });
  const m = r.mounts[0]!;
  const src = m.type === 'bind' ? m.source : '';
  assert.ok(existsSync(join(src, 'src/a.txt')));
  assert.ok(!existsSync(join(src, 'src/secret.txt')));
  await r.cleanup();
  assert.ok(!existsSync(src));
});
