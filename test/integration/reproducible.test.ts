/**
 * Reproducible builds through the real CLI: the same context built twice (with its files touched in
 * between) gives the same manifest digest and byte-identical blobs with --reproducible, with
 * --timestamp and with SOURCE_DATE_EPOCH; the config's created time is the clamp.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kiln } from '../helpers/cli.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';

const isRoot = process.getuid?.() === 0;

interface Layout {
  digest: string;
  /** blob digest -> bytes */
  blobs: Map<string, Buffer>;
  config: { created?: string; history?: { created?: string }[] };
  layers: string[];
}

async function readLayout(dir: string): Promise<Layout> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  assert.equal(index.manifests.length, 1);
  const digest = index.manifests[0]!.digest;
  const blobs = new Map<string, Buffer>();
  for (const hex of await readdir(join(dir, 'blobs', 'sha256'))) {
    blobs.set(`sha256:${hex}`, await readFile(join(dir, 'blobs', 'sha256', hex)));
  }
  const manifest = JSON.parse(blobs.get(digest)!.toString()) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  return {
    digest,
    blobs,
    config: JSON.parse(blobs.get(manifest.config.digest)!.toString()) as Layout['config'],
    layers: manifest.layers.map((l) => l.digest),
  };
}

let work: string;
let reg: TestRegistry | undefined;
let ctx: string;
let n = 0;

before(async () => {
  if (!isRoot) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-repro-'));
  await chmod(work, 0o755);
  reg = await startRegistry();
  await pushBusyboxImage(reg, 'base/busybox', '1');
  ctx = join(work, 'ctx');
  await mkdir(join(ctx, 'sub'), { recursive: true });
  await writeFile(
    join(ctx, 'Dockerfile'),
    `FROM ${reg.host}/base/busybox:1
COPY app.txt /app/app.txt
COPY sub/ /app/sub/
RUN mkdir -p /out && echo built > /out/f && ln -s f /out/l && ln /out/f /out/h && rm /etc/group
ENV A=1
`,
  );
  await writeFile(join(ctx, 'app.txt'), 'app\n');
  await writeFile(join(ctx, 'sub', 'x'), 'x\n');
});

after(async () => {
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** One build into a fresh OCI layout; the context's mtimes are moved first so only the clamp can make them equal. */
async function build(flags: string[], env: Record<string, string | undefined> = {}): Promise<Layout> {
  n++;
  const now = Date.now() / 1000 + n * 100;
  for (const f of ['app.txt', 'sub/x', 'sub']) await utimes(join(ctx, f), now, now);
  const out = join(work, `layout-${n}`);
  const r = await kiln(
    [
      'build',
      '-c',
      ctx,
      '--no-push',
      '--insecure-registry',
      reg!.host,
      '--oci-layout-path',
      out,
      '--isolation',
      'chroot',
      '--work-dir',
      join(work, `w-${n}`),
      ...flags,
    ],
    env,
  );
  assert.equal(r.code, 0, r.stderr);
  const layout = await readLayout(out);
  assert.equal(r.stdout.trim(), layout.digest, 'the printed digest is the layout manifest');
  return layout;
}

function assertSame(a: Layout, b: Layout): void {
  assert.equal(a.digest, b.digest, 'manifest digests');
  assert.deepEqual(a.layers, b.layers, 'layer digests');
  for (const l of a.layers) assert.ok(a.blobs.get(l)!.equals(b.blobs.get(l)!), `layer ${l} bytes`);
  assert.deepEqual([...a.blobs.keys()].sort(), [...b.blobs.keys()].sort());
}

function assertCreated(l: Layout, iso: string): void {
  assert.ok(l.config.created, 'config has created');
  assert.equal(new Date(l.config.created).toISOString(), iso, 'config created is the clamp');
  for (const h of l.config.history ?? []) {
    // The base image's own history keeps its time; kiln's entries are clamped.
    if (h.created) assert.ok(new Date(h.created).getTime() <= new Date(iso).getTime(), h.created);
  }
  const mine = (l.config.history ?? []).slice(1);
  assert.ok(mine.length >= 3);
  for (const h of mine) assert.equal(h.created && new Date(h.created).toISOString(), iso);
}

const cases: { name: string; flags: string[]; env: Record<string, string | undefined>; created: string }[] = [
  {
    name: '--reproducible',
    flags: ['--reproducible'],
    env: { SOURCE_DATE_EPOCH: undefined },
    created: '1970-01-01T00:00:00.000Z',
  },
  {
    name: '--timestamp 1700000000',
    flags: ['--timestamp', '1700000000'],
    env: { SOURCE_DATE_EPOCH: undefined },
    created: '2023-11-14T22:13:20.000Z',
  },
  {
    name: 'SOURCE_DATE_EPOCH',
    flags: [],
    env: { SOURCE_DATE_EPOCH: '1700000000' },
    created: '2023-11-14T22:13:20.000Z',
  },
];

describe('reproducible builds', { skip: !isRoot && 'needs root (chroot rung)' }, () => {
  const results = new Map<string, Layout>();
  for (const c of cases) {
    test(`${c.name}: two builds are identical, created is the clamp`, { timeout: 180_000 }, async () => {
      const a = await build(c.flags, c.env);
      const b = await build(c.flags, c.env);
      assertSame(a, b);
      assertCreated(a, c.created);
      results.set(c.name, a);
    });
  }

  test('--timestamp and SOURCE_DATE_EPOCH with the same value give the same image', () => {
    const t = results.get('--timestamp 1700000000');
    const s = results.get('SOURCE_DATE_EPOCH');
    assert.ok(t && s);
    assertSame(t, s);
    assert.notEqual(t.digest, results.get('--reproducible')?.digest);
  });

  test('without a clamp two builds differ (the test can tell)', { timeout: 180_000 }, async () => {
    const a = await build([], { SOURCE_DATE_EPOCH: undefined });
    await new Promise((r) => setTimeout(r, 1100));
    const b = await build([], { SOURCE_DATE_EPOCH: undefined });
    assert.notEqual(a.digest, b.digest);
  });
});
