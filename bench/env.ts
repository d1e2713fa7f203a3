/**
 * The environment every benchmark scenario shares: a throwaway registry on loopback (the test helper)
 * with the debian:bookworm minbase and busybox bases pushed to it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { pushDebianImage } from '../test/helpers/debian.ts';
import { pushBusyboxImage } from '../test/helpers/images.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import type { TestRegistry } from '../test/helpers/registry.ts';

export const BENCH_CACHE = '/var/cache/kiln-bench';

export interface BenchEnv {
  reg: TestRegistry;
  /** `<host>/base/debian:bookworm` */
  debian: string;
  /** `<host>/base/busybox:latest` */
  busybox: string;
  /** Scratch dir for this run (removed by stop()). */
  scratch: string;
  /** The reference builder's storage driver (`overlay` where it works, else `vfs`). */
  buildahDriver: string;
  stop(): Promise<void>;
}

export interface ScenarioResult {
  scenario: string;
  rows: Array<Record<string, string | number>>;
  metrics: Record<string, number | string>;
}

/** overlay when buildah can mount it here (not nested on overlay), else vfs. */
function pickBuildahDriver(scratch: string): string {
  try {
    const root = `${scratch}/buildah-probe`;
    execFileSync(
      'buildah',
      ['--root', `${root}/root`, '--runroot', `${root}/run`, '--storage-driver', 'overlay', 'info'],
      { stdio: 'ignore', timeout: 30_000 },
    );
    execFileSync('rm', ['-rf', root]);
    const fs = execFileSync('stat', ['-f', '-c', '%T', scratch]).toString().trim();
    return fs === 'overlayfs' ? 'vfs' : 'overlay';
  } catch {
    return 'vfs';
  }
}

export async function startBenchEnv(): Promise<BenchEnv> {
  mkdirSync(BENCH_CACHE, { recursive: true });
  const scratch = execFileSync('mktemp', ['-d', `${BENCH_CACHE}/run-XXXXXX`])
    .toString()
    .trim();
  const reg = await startRegistry();
  const digest = await pushDebianImage(reg, 'base/debian', 'bookworm');
  await pushBusyboxImage(reg, 'base/busybox', 'latest');
  process.stderr.write(`[bench] registry ${reg.host}, debian base ${digest}\n`);
  return {
    reg,
    debian: `${reg.host}/base/debian:bookworm`,
    busybox: `${reg.host}/base/busybox:latest`,
    scratch,
    buildahDriver: process.env.KILN_BENCH_BUILDAH_DRIVER ?? pickBuildahDriver(scratch),
    async stop() {
      await reg.stop();
      execFileSync('rm', ['-rf', scratch]);
    },
  };
}
