/**
 * The hostile-layer suite (test/helpers/hostile-layers.ts) through real builds in every rung here:
 * chroot as root, rootless as an unprivileged user with a subuid range, plain forced. Each layer is
 * stacked under a busybox base and built with FROM + RUN + COPY; the layers that must be contained
 * share one image (their names never meet), each one that must be refused gets its own. Before and
 * after each build the host canary (content, mode, owner, xattrs, times, names; owned by the build
 * user, so an escape would succeed) is compared, and no build may exit 70.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { probeIsolation } from '../../src/isolation/probe.ts';
import type { ProbeResult } from '../../src/isolation/types.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { busyboxLayout } from '../helpers/images.ts';
import { kiln } from '../helpers/cli.ts';
import {
  hostileLayers,
  makeCanary,
  newTarget,
  pushHostileImage,
  snapshotHost,
  type HostileLayer,
  type HostileTarget,
} from '../helpers/hostile-layers.ts';
import { ensureUser } from '../helpers/runner-env.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (test users, every rung)';
const USER = 'kilntest';

let work: string;
let reg: TestRegistry | undefined;
let probe: ProbeResult | undefined;
let target: HostileTarget;
let layers: HostileLayer[] = [];
const solo: HostileLayer[] = [];
const report: string[] = [];

async function ids(name: string): Promise<{ uid: number; gid: number }> {
  const uid = Number((await execFileP('id', ['-u', name])).stdout.trim());
  const gid = Number((await execFileP('id', ['-g', name])).stdout.trim());
  return { uid, gid };
}

before(async () => {
  if (skip) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-hostile-'));
  await chmod(work, 0o755);
  await ensureUser(USER, '200000:65536');
  probe = await probeIsolation({ want: 'auto', workDir: join(work, 'probe') });
  reg = await startRegistry({ auth: 'none' });
  target = newTarget(join(work, 'canary'));
  layers = await hostileLayers(target);
  const layout = await busyboxLayout();
  const contained = layers.filter((l) => l.expect === 'contained');
  await pushHostileImage(
    reg,
    layout,
    'hostile/contained',
    '1',
    contained.map((l) => l.blob),
  );
  for (const l of layers.filter((x) => x.expect !== 'contained')) {
    await pushHostileImage(reg, layout, `hostile/${l.id}`, '1', [l.blob]);
    solo.push(l);
  }
});

after(async () => {
  if (report.length) console.log(`hostile layers, per rung:\n${report.join('\n')}`);
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface Rung {
  name: string;
  isolation: string;
  user?: string;
}

const RUNGS: Rung[] = [
  { name: 'chroot', isolation: 'chroot' },
  { name: 'rootless', isolation: 'rootless', user: USER },
  { name: 'plain', isolation: 'plain' },
];

/** RUN reads every device the layers carried: a placeholder gives 0 bytes, a real /dev/kmsg does not. */
const DOCKERFILE = (base: string) => `FROM ${base}
RUN for f in /h20/kmsg /h20/mem /h21/sda; do printf 'DEV %s %s\\n' $f "$(head -c 64 $f 2>/dev/null | wc -c)"; done; \\
    touch /h20/kmsg && ls -ln /h19/suid
COPY marker /marker
`;

async function dirsFor(rung: Rung, slug: string): Promise<{ ctx: string; workDir: string; home: string }> {
  const dir = join(work, rung.name, slug);
  const d = { ctx: join(dir, 'ctx'), workDir: join(dir, 'work'), home: join(dir, 'home') };
  for (const p of Object.values(d)) await mkdir(p, { recursive: true });
  await writeFile(join(d.ctx, 'marker'), 'copied\n');
  if (rung.user) {
    const o = await ids(rung.user);
    for (const p of [join(work, rung.name), dir, ...Object.values(d), join(d.ctx, 'marker')])
      await chown(p, o.uid, o.gid);
  }
  return d;
}

async function build(rung: Rung, image: string, slug: string, env: Record<string, string> = {}) {
  const d = await dirsFor(rung, slug);
  await writeFile(join(d.ctx, 'Dockerfile'), DOCKERFILE(`${reg!.host}/${image}`));
  const owner = rung.user ? await ids(rung.user) : { uid: 0, gid: 0 };
  await makeCanary(target, owner);
  const before = snapshotHost(target, [work, d.workDir]);
  const dest = `${reg!.host}/out/${rung.name}-${slug}:1`;
  const r = await kiln(
    [
      'build',
      '-c',
      d.ctx,
      '-d',
      dest,
      '--insecure-registry',
      reg!.host,
      '--isolation',
      rung.isolation,
      '--work-dir',
      d.workDir,
    ],
    { HOME: d.home, ...env },
    rung.user ? { user: rung.user } : {},
  );
  const afterSnap = snapshotHost(target, [work, d.workDir]);
  return { r, dest, d, hostChanged: afterSnap !== before, diff: diffLines(before, afterSnap) };
}

function diffLines(a: string, b: string): string {
  const A = new Set(a.split('\n'));
  const B = new Set(b.split('\n'));
  return [
    ...[...A].filter((l) => !B.has(l)).map((l) => `- ${l}`),
    ...[...B].filter((l) => !A.has(l)).map((l) => `+ ${l}`),
  ].join('\n');
}

/** The entries of one pushed layer of `ref` (index from the end), as name -> type. */
async function layerEntries(ref: string, fromEnd: number): Promise<Map<string, string>> {
  const [, repo, tag] = /^[^/]+\/(.+):([^:]+)$/.exec(ref)!;
  const m = (await (
    await fetch(`${reg!.url}/v2/${repo}/manifests/${tag}`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    })
  ).json()) as { layers: Array<{ digest: string }> };
  const layer = m.layers[m.layers.length - 1 - fromEnd]!;
  const blob = Buffer.from(await (await fetch(`${reg!.url}/v2/${repo}/blobs/${layer.digest}`)).arrayBuffer());
  const out = new Map<string, string>();
  const ex = tar.extract();
  const done = (async () => {
    for await (const e of ex) {
      out.set(e.header.name, e.header.type ?? '');
      e.resume();
    }
  })();
  Readable.from([blob]).pipe(createGunzip()).pipe(ex);
  await done;
  return out;
}

describe('hostile layers under FROM + RUN + COPY in every rung', { skip }, () => {
  for (const rung of RUNGS) {
    test(
      `${rung.name}: ${'every layer'} contained or refused, host untouched`,
      { timeout: 600_000 },
      async (t) => {
        if (!probe?.reports.find((r) => r.rung === rung.name)?.ok)
          return t.skip(`${rung.name} is not available here`);
        const problems: string[] = [];
        // The contained layers, all in one image; the build dir is kept to check its mode.
        const all = await build(rung, 'hostile/contained:1', 'contained', { KILN_KEEP_WORKDIR: '1' });
        const ids = layers.filter((l) => l.expect === 'contained').map((l) => l.id);
        if (all.hostChanged) problems.push(`contained image changed the host:\n${all.diff}`);
        if (all.r.code !== 0) problems.push(`contained image failed (${all.r.code}):\n${all.r.stderr}`);
        else {
          for (const dev of ['/h20/kmsg', '/h20/mem', '/h21/sda'])
            if (!all.r.stderr.includes(`DEV ${dev} 0`))
              problems.push(`${dev} gave bytes to RUN:\n${all.r.stderr}`);
          const runLayer = await layerEntries(all.dest, 1);
          if (runLayer.get('h20/kmsg') !== 'character-device')
            problems.push(`the RUN layer does not keep h20/kmsg as a device: ${runLayer.get('h20/kmsg')}`);
          const buildDirs = readdirSync(all.d.workDir).filter((n) => n.startsWith('build-'));
          for (const b of buildDirs) {
            const st = statSync(join(all.d.workDir, b));
            // 0700, or 0711 where the plain rung's PRoot mode lets its non-root tracees pass through
            // (enter, never list or write; the name then carries a random part no one can guess).
            const mode = st.mode & 0o777;
            const ok = mode === 0o700 || (mode === 0o711 && /-[0-9a-f]{16}$/.test(b));
            if (!ok) problems.push(`${b} is ${mode.toString(8)}, not 700 (or 711 with a random name)`);
          }
          if (buildDirs.length === 0) problems.push('no build dir kept');
        }
        report.push(`${rung.name}: ${ids.join(' ')} contained (exit ${all.r.code})`);
        for (const l of solo) {
          const one = await build(rung, `hostile/${l.id}:1`, l.id);
          const what = `${l.id} (${l.what})`;
          if (one.hostChanged) problems.push(`${what} changed the host:\n${one.diff}`);
          const ok =
            one.r.code === 8 ? l.expect !== 'contained' : one.r.code === 0 ? l.expect !== 'refused' : false;
          if (!ok)
            problems.push(`${what}: exit ${one.r.code}, wanted ${l.expect}:\n${one.r.stderr.slice(-2000)}`);
          if (one.r.code === 8 && !/^error: .+\n\s+hint: .+/m.test(one.r.stderr))
            problems.push(`${what}: unclear error:\n${one.r.stderr.slice(-1000)}`);
          const err = /error: (.*)/.exec(one.r.stderr)?.[1] ?? '';
          report.push(`${rung.name}: ${l.id} exit ${one.r.code}${err ? ` ${err.slice(0, 120)}` : ''}`);
        }
        await rm(join(work, rung.name), { recursive: true, force: true });
        assert.deepEqual(problems, []);
      },
    );
  }
});
