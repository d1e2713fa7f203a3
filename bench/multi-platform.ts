/**
 * Issue 20: the app scenario's Dockerfile for linux/amd64 and linux/arm64 in one run, on a
 * two-platform debian:bookworm index (the arm64 minbase debootstrapped through QEMU, cached): the
 * apt and make steps of arm64 run emulated. kiln `--platform linux/amd64,linux/arm64` vs `buildah
 * build --platform linux/amd64,linux/arm64 --manifest` + `manifest push --all`, both pushing one index.
 */
import { join } from 'node:path';
import { SetupError } from '../test/helpers/setup-error.ts';
import { ensureQemuBinfmt } from '../test/helpers/binfmt.ts';
import { pushMultiArchDebian } from '../test/helpers/debian.ts';
import { writeContext, SOURCE_FILES } from './app.ts';
import { pairedBuilds, pairedSummary } from './builds.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';

export const PLATFORMS = ['linux/amd64', 'linux/arm64'];

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const why = ensureQemuBinfmt(['arm64']);
  if (why)
    throw new SetupError('internal', 'BENCH_NO_QEMU', `the multi-platform scenario needs QEMU: ${why}`, {
      hint: 'run as root with qemu-user-static installed (scripts/setup-system.sh)',
    });
  const digest = await pushMultiArchDebian(env.reg, 'base/debian-multi', 'bookworm', ['amd64', 'arm64']);
  process.stderr.write(`[bench] two-platform debian base ${digest}\n`);
  const ctx = join(env.scratch, 'multi-ctx');
  writeContext(ctx, `${env.reg.host}/base/debian-multi:bookworm`);
  const p = await pairedBuilds(env, ctx, 'multi', PLATFORMS);
  const { rows, metrics } = pairedSummary(
    env,
    p,
    `multi-platform app (${PLATFORMS.join(', ')}): apt + COPY ${SOURCE_FILES} files + make + 2nd stage`,
  );
  return { scenario: 'multi-platform', rows, metrics };
}
