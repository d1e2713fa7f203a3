/**
 * The CLI keeps V8's young generation at its starting size (src/util/young-generation.ts), also
 * after worker threads start, whose boot puts V8's flags back to Node's. Each case runs in a fresh
 * node process: the setting is process-wide.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const MODULE = join(import.meta.dirname, '../../../src/util/young-generation.ts');

/** The largest new space (MiB) seen while 200,000 long-lived objects and 2,000 1 MiB buffers are made. */
function peakNewSpace(setup: string): number {
  const script = `
    import v8 from 'node:v8';
    import { Worker } from 'node:worker_threads';
    import { keepYoungGenerationSmall, watchWorker } from ${JSON.stringify(MODULE)};
    ${setup}
    const ns = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    const keep = [];
    let peak = 0;
    for (let i = 0; i < 200000; i++) {
      keep.push({ i, s: 'x' + i, a: [i] });
      if (i % 100 === 0) {
        Buffer.allocUnsafeSlow(1 << 20);
        await new Promise((r) => setImmediate(r));
        peak = Math.max(peak, ns());
      }
    }
    console.log(peak / 1048576);
    process.exit(0);
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  return Number(out.trim());
}

// Booted as kiln's workers are in the bundle: eval'd source, no loader (this test runs under tsx).
// The allocations start once the worker runs: what is measured is whether its boot undid the setting.
const worker =
  "await new Promise((r) => new Worker('setTimeout(() => {}, 3000)', { eval: true, execArgv: [] }).once('online', r))";
const watched =
  "await new Promise((r) => watchWorker(new Worker('setTimeout(() => {}, 3000)', { eval: true, execArgv: [] })).once('online', r))";

test('without the setting the young generation grows to 32 MiB (the default this guards against)', () => {
  assert.ok(peakNewSpace('') >= 16);
});

test('kept small, it stays at its starting size, also after a worker watched by watchWorker starts', () => {
  assert.ok(peakNewSpace('keepYoungGenerationSmall();') <= 4);
  assert.ok(peakNewSpace(`keepYoungGenerationSmall(); ${watched};`) <= 4);
});

test('a worker started without watchWorker undoes it: why every kiln worker goes through it', () => {
  assert.ok(peakNewSpace(`keepYoungGenerationSmall(); ${worker};`) >= 16);
});
