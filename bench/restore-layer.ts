/**
 * Helper process of the `restore` scenario: extracts one layer blob into a directory with kiln's
 * extractor (the one that restores cached layers and bases) and prints the seconds it took, so the
 * figure excludes node's and tsx's start-up, which `tar -xzf` does not pay either.
 * Usage: node --import tsx bench/restore-layer.ts <blob> <dir>
 */
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { extractLayer } from '../src/fs/extract.ts';

const [blob, dir] = process.argv.slice(2) as [string, string];
await mkdir(dir, { recursive: true });
const t0 = performance.now();
const { entries } = await extractLayer(createReadStream(blob, { highWaterMark: 1 << 20 }), dir);
process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000, entries }) + '\n');
