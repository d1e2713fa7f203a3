/**
 * Issue 3: push and pull of a 1 GB, 10-layer image of incompressible data. kiln's RegistryClient (via
 * bench/registry-cli.ts, a child process under GNU time) against `skopeo copy`, same registry, same run.
 * The layers are written once to an OCI layout under the bench cache and reused.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ociArch } from '../test/helpers/images.ts';
import { BENCH_CACHE } from './env.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';
import { measure, ratio, table } from './measure.ts';
import type { Measurement } from './measure.ts';

const LAYERS = 10;
const LAYER_MB = 100;
const LAYOUT = join(BENCH_CACHE, `random-1g-10layers-oci-${ociArch()}-v1`);

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

async function writeJsonBlob(layout: string, v: unknown): Promise<{ digest: string; size: number }> {
  const buf = Buffer.from(JSON.stringify(v));
  const hex = createHash('sha256').update(buf).digest('hex');
  await writeFile(join(layout, 'blobs', 'sha256', hex), buf);
  return { digest: `sha256:${hex}`, size: buf.length };
}

/** 10 gzip layers of one 100 MiB random file each (gzip -1: stored blocks, incompressible). */
async function ensureLayout(): Promise<string> {
  if (existsSync(join(LAYOUT, 'index.json'))) return LAYOUT;
  await mkdir(BENCH_CACHE, { recursive: true });
  const work = await mkdtemp(join(BENCH_CACHE, 'random-'));
  try {
    const layout = join(work, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const layers: { digest: string; size: number; mediaType: string }[] = [];
    const diffIds: string[] = [];
    for (let i = 0; i < LAYERS; i++) {
      process.stderr.write(`[bench] writing random layer ${i + 1}/${LAYERS}\n`);
      const dir = join(work, `l${i}`);
      await mkdir(join(dir, 'data'), { recursive: true });
      execFileSync(
        'sh',
        [
          '-c',
          `head -c ${LAYER_MB}M /dev/urandom > data/layer${i}.bin && ` +
            `tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -cf layer.tar data && ` +
            `gzip -1 -n -c layer.tar > layer.tar.gz`,
        ],
        { cwd: dir },
      );
      diffIds.push(`sha256:${await sha256File(join(dir, 'layer.tar'))}`);
      const hex = await sha256File(join(dir, 'layer.tar.gz'));
      const size = (await stat(join(dir, 'layer.tar.gz'))).size;
      await rename(join(dir, 'layer.tar.gz'), join(layout, 'blobs', 'sha256', hex));
      await rm(dir, { recursive: true, force: true });
      layers.push({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: `sha256:${hex}`,
        size,
      });
    }
    const config = await writeJsonBlob(layout, {
      architecture: ociArch(),
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: diffIds },
    });
    const manifest = await writeJsonBlob(layout, {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers,
    });
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            annotations: { 'org.opencontainers.image.ref.name': 'random' },
          },
        ],
      }),
    );
    await rename(layout, LAYOUT);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return LAYOUT;
}

function check(m: Measurement): Measurement {
  if (m.exitCode !== 0) process.stderr.write(`[bench] ${m.label} FAILED (exit ${m.exitCode})\n`);
  return m;
}

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const layout = await ensureLayout();
  const host = env.reg.host;
  const cli = ['node', '--import', 'tsx', join(import.meta.dirname, 'registry-cli.ts')];
  const tag = Date.now().toString(36);

  const kilnPush = check(
    await measure('kiln push', [...cli, 'push', layout, `${host}/bench/kiln-push:${tag}`]),
  );
  const refPush = check(
    await measure('skopeo push', [
      'skopeo',
      '--insecure-policy',
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout}:random`,
      `docker://${host}/bench/skopeo-push:${tag}`,
    ]),
  );
  const kilnDir = join(env.scratch, 'kiln-pull');
  const refDir = join(env.scratch, 'skopeo-pull');
  const kilnPull = check(
    await measure('kiln pull', [...cli, 'pull', `${host}/bench/skopeo-push:${tag}`, kilnDir]),
  );
  const refPull = check(
    await measure('skopeo pull', [
      'skopeo',
      '--insecure-policy',
      'copy',
      '--src-tls-verify=false',
      `docker://${host}/bench/skopeo-push:${tag}`,
      `oci:${refDir}:random`,
    ]),
  );
  const pulled = Number(execFileSync('du', ['-sb', kilnDir]).toString().split('\t')[0]) / 1e9;
  await rm(kilnDir, { recursive: true, force: true });
  await rm(refDir, { recursive: true, force: true });
  // Sanity: kiln's push is readable by skopeo.
  execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/bench/kiln-push:${tag}`], {
    stdio: 'ignore',
  });

  const rows = [
    row('push 1 GB / 10 layers', kilnPush, refPush),
    row('pull 1 GB / 10 layers', kilnPull, refPull),
  ];
  const bad = [kilnPush, refPush, kilnPull, refPull].filter((m) => m.exitCode !== 0);
  return {
    scenario: 'registry',
    rows,
    metrics: {
      pulledGB: pulled.toFixed(2),
      kilnPushS: kilnPush.wallSeconds,
      skopeoPushS: refPush.wallSeconds,
      pushRatio: ratio(kilnPush, refPush),
      kilnPushRssMb: kilnPush.maxRssMb,
      kilnPullS: kilnPull.wallSeconds,
      skopeoPullS: refPull.wallSeconds,
      pullRatio: ratio(kilnPull, refPull),
      kilnPullRssMb: kilnPull.maxRssMb,
      failures: bad.map((m) => m.label).join(',') || 'none',
    },
  };
}

export function row(
  op: string,
  k: Measurement,
  r: Measurement,
  ref = 'skopeo',
): Record<string, string | number> {
  return {
    operation: op,
    'kiln s': k.wallSeconds.toFixed(2) + (k.exitCode ? ' FAILED' : ''),
    [`${ref} s`]: r.wallSeconds.toFixed(2) + (r.exitCode ? ' FAILED' : ''),
    'kiln/ref': ratio(k, r),
    'kiln RSS MB': k.maxRssMb,
    [`${ref} RSS MB`]: r.maxRssMb,
  };
}

export { table };

/** The layout dir, for callers that only want the data. */
export async function randomLayout(): Promise<string> {
  return ensureLayout();
}

export async function layoutDigest(): Promise<string> {
  const index = JSON.parse(await readFile(join(await ensureLayout(), 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  return index.manifests[0]!.digest;
}
