/**
 * Issue 4: the snapshot cost of a small RUN (10 files changed) on top of a large tree, per engine and
 * per tree size. The overlay engine reads only the step's upper dir, so its time should barely move
 * from 2,000 to 20,000 files; the stat-walk engine indexes the whole tree and grows with it.
 * `npm run bench -- snapshot`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSnapshotter, overlayAvailable } from '../src/fs/snapshotter.ts';
import type { SnapshotEngine } from '../src/fs/types.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';

const SIZES = [2_000, 20_000];
const PER_DIR = 100;

function makeTree(root: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const dir = join(root, 'usr', `d${Math.floor(i / PER_DIR)}`);
    if (i % PER_DIR === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}`), `file ${i}\n`);
  }
}

async function time(
  scratch: string,
  engine: SnapshotEngine,
  files: number,
): Promise<{ beginMs: number; finishMs: number; changed: number }> {
  const tmp = mkdtempSync(join(scratch, 'snap-'));
  try {
    const rootfs = join(tmp, 'rootfs');
    makeTree(rootfs, files);
    const snapper = createSnapshotter(engine, rootfs, join(tmp, 'scratch'));
    const t0 = performance.now();
    const snap = await snapper.begin({ exclude: ['/proc', '/sys', '/dev'] });
    const t1 = performance.now();
    const cmds: string[] = [];
    for (let k = 0; k < 10; k++) {
      const i = k * Math.floor(files / 10);
      cmds.push(`echo changed >> ${join(snap.runRoot, 'usr', `d${Math.floor(i / PER_DIR)}`, `f${i}`)}`);
    }
    execFileSync('sh', ['-c', cmds.join(' && ')]);
    const t2 = performance.now();
    const diff = await snap.finish();
    const t3 = performance.now();
    return { beginMs: t1 - t0, finishMs: t3 - t2, changed: diff.changed.length };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const probe = mkdtempSync(join(env.scratch, 'probe-'));
  const engines: SnapshotEngine[] = (await overlayAvailable(probe)) ? ['overlay', 'walk'] : ['walk'];
  rmSync(probe, { recursive: true, force: true });
  const rows: Array<Record<string, string | number>> = [];
  const metrics: Record<string, number | string> = {};
  for (const engine of engines) {
    for (const files of SIZES) {
      const r = await time(env.scratch, engine, files);
      rows.push({
        engine,
        'tree files': files,
        'begin ms': r.beginMs.toFixed(1),
        'finish ms': r.finishMs.toFixed(1),
        'begin+finish ms': (r.beginMs + r.finishMs).toFixed(1),
        'changed entries': r.changed,
      });
      metrics[`${engine}${files}Ms`] = Number((r.beginMs + r.finishMs).toFixed(1));
    }
  }
  return { scenario: 'snapshot', rows, metrics };
}
