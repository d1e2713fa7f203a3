/**
 * Micro benchmark of the snapshot engines: a 20k-file tree, a step that changes 10 files, and the
 * time finish() takes for each engine (begin() too, since the walk engine indexes there).
 * Run: node --import tsx bench/snapshot.ts [files]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSnapshotter, overlayAvailable } from '../src/fs/snapshotter.ts';
import type { SnapshotEngine } from '../src/fs/types.ts';

const FILES = Number(process.argv[2] ?? 20000);
const PER_DIR = 100;

function makeTree(root: string): void {
  for (let i = 0; i < FILES; i++) {
    const dir = join(root, 'usr', `d${Math.floor(i / PER_DIR)}`);
    if (i % PER_DIR === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}`), `file ${i}\n`);
  }
}

async function bench(engine: SnapshotEngine): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'kiln-bench-snap-'));
  try {
    const rootfs = join(tmp, 'rootfs');
    makeTree(rootfs);
    const snapper = createSnapshotter(engine, rootfs, join(tmp, 'scratch'));
    const t0 = performance.now();
    const snap = await snapper.begin({ exclude: ['/proc', '/sys', '/dev'] });
    const t1 = performance.now();
    const cmds: string[] = [];
    for (let k = 0; k < 10; k++) {
      const i = k * Math.floor(FILES / 10);
      cmds.push(`echo changed >> ${join(snap.runRoot, 'usr', `d${Math.floor(i / PER_DIR)}`, `f${i}`)}`);
    }
    execFileSync('sh', ['-c', cmds.join(' && ')]);
    const t2 = performance.now();
    const diff = await snap.finish();
    const t3 = performance.now();
    console.log(
      `${engine.padEnd(8)} files=${FILES} begin=${(t1 - t0).toFixed(1)}ms finish=${(t3 - t2).toFixed(1)}ms ` +
        `changed=${diff.changed.length} deleted=${diff.deleted.length}`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const probe = mkdtempSync(join(tmpdir(), 'kiln-bench-probe-'));
const engines: SnapshotEngine[] = (await overlayAvailable(probe)) ? ['overlay', 'walk'] : ['walk'];
rmSync(probe, { recursive: true, force: true });
for (const e of engines) await bench(e);
