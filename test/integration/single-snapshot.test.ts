/**
 * --single-snapshot through the real CLI, snapshotter and layer writer, as Kaniko defines it: one
 * layer for the whole build, taken at the end of the final stage. A two-COPY + RUN build on busybox
 * gives the base layer plus exactly one layer holding every file the three steps wrote.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kiln } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
let work = '';
let reg: TestRegistry | undefined;

before(async () => {
  if (!isRoot) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-single-'));
  await chmod(work, 0o755);
  reg = await startRegistry();
  await pushBusyboxImage(reg, 'base/busybox', '1');
});
after(async () => {
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function layers(layout: string): Promise<string[][]> {
  const blob = (d: string): string => join(layout, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as {
    layers: { digest: string }[];
  };
  const out: string[][] = [];
  for (const l of manifest.layers) {
    const { stdout } = await execFileP('tar', ['-tzf', blob(l.digest)], { maxBuffer: 64 << 20 });
    out.push(stdout.split('\n').filter(Boolean));
  }
  return out;
}

async function build(ctx: string, name: string, extra: string[]): Promise<string[][]> {
  const out = join(work, `out-${name}`);
  const r = await kiln([
    'build',
    '-c',
    ctx,
    '--no-push',
    '--oci-layout-path',
    out,
    '--insecure-registry',
    reg!.host,
    '--isolation',
    'chroot',
    '--work-dir',
    join(work, `w-${name}`),
    ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return layers(out);
}

test(
  '--single-snapshot: base layers plus one layer with every file; without it, one layer per step',
  { skip: !isRoot && 'needs root (chroot rung)', timeout: 180_000 },
  async () => {
    const ctx = join(work, 'ctx');
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, 'a.txt'), 'a\n');
    await writeFile(join(ctx, 'b.txt'), 'b\n');
    await writeFile(
      join(ctx, 'Dockerfile'),
      `FROM ${reg!.host}/base/busybox:1\nCOPY a.txt /app/a.txt\nCOPY b.txt /app/b.txt\nRUN cat /app/a.txt /app/b.txt > /app/ab.txt\nENV X=1\n`,
    );
    const single = await build(ctx, 'single', ['--single-snapshot']);
    const normal = await build(ctx, 'normal', []);
    assert.equal(normal.length, 4);
    assert.equal(single.length, 2);
    assert.deepEqual(single[0], normal[0], 'the base layer is the same');
    const files = single[1]!.filter((e) => !e.endsWith('/'));
    assert.deepEqual(files.sort(), ['app/a.txt', 'app/ab.txt', 'app/b.txt']);
  },
);
