/**
 * Issue 16: layer restore throughput. The debian bookworm minbase layer (the bench's base, one
 * gzip layer) extracted by kiln's extractor and by GNU `tar -xzf` into an empty directory on the
 * same disk, alternated KILN_BENCH_RUNS times. Target: kiln/tar <= 1.0 (medians).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEBIAN_ROOTFS_TARBALL } from '../test/helpers/debian.ts';
import { median, RUNS } from './builds.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';

const REPO_ROOT = join(import.meta.dirname, '..');

function kilnOnce(dir: string): number {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'bench/restore-layer.ts'), DEBIAN_ROOTFS_TARBALL, dir],
    { cwd: REPO_ROOT, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`kiln extraction failed: ${r.stderr}`);
  return (JSON.parse(r.stdout.trim()) as { seconds: number }).seconds;
}

function tarOnce(dir: string): number {
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  execFileSync('tar', ['-xzf', DEBIAN_ROOTFS_TARBALL, '-C', dir, '--numeric-owner']);
  return (performance.now() - t0) / 1000;
}

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const mib = statSync(DEBIAN_ROOTFS_TARBALL).size / (1 << 20);
  const kiln: number[] = [];
  const tar: number[] = [];
  const loads: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    for (const [who, fn, out] of [
      ['kiln', kilnOnce, kiln],
      ['tar', tarOnce, tar],
    ] as const) {
      const dir = join(env.scratch, `restore-${who}-${i}`);
      execFileSync('sync');
      loads.push(loadavg()[0]!);
      out.push(fn(dir));
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const k = median(kiln);
  const t = median(tar);
  const rows = kiln.map((s, i) => ({
    run: `#${i + 1}`,
    'kiln s': s.toFixed(2),
    'tar -xzf s': tar[i]!.toFixed(2),
    'kiln/tar': (s / tar[i]!).toFixed(2),
  }));
  rows.push({
    run: `median of ${RUNS}`,
    'kiln s': k.toFixed(2),
    'tar -xzf s': t.toFixed(2),
    'kiln/tar': (k / t).toFixed(2),
  });
  return {
    scenario: 'restore',
    rows,
    metrics: {
      layerMiB: Number(mib.toFixed(1)),
      runs: RUNS,
      kilnS: k,
      tarS: t,
      ratio: Number((k / t).toFixed(3)),
      kilnMiBps: Number((mib / k).toFixed(1)),
      loadMin: Number(Math.min(...loads).toFixed(2)),
      loadMax: Number(Math.max(...loads).toFixed(2)),
      target: k / t <= 1.0 ? 'met (<=1.0)' : 'MISSED (<=1.0)',
    },
  };
}
