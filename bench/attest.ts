/**
 * Issue 19: what `--attestation max --sign` adds to the app build (bench/app.ts's context: apt,
 * 5,000-file COPY, make, second stage). kiln without and with attestations + a key signature,
 * alternately, KILN_BENCH_RUNS times each, cold, pushing to the bench registry. The headline is
 * median(with) / median(without); the SBOM/provenance and signing times come from kiln's own
 * log lines. Keyless signing is not measured (it waits on Fulcio/Rekor, not on kiln).
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { kilnBuild, median, RUNS, tail, type BuildRun } from './builds.ts';
import { SOURCE_FILES, writeContext } from './app.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';

/** kiln logs `attestations: SBOM (...) in N ms`. */
function attestMs(r: BuildRun): number {
  for (const l of r.lines) {
    const m = /attestations: .* in (\d+) ms/.exec(l.line);
    if (m) return Number(m[1]);
  }
  return NaN;
}

export async function run(env: BenchEnv): Promise<ScenarioResult> {
  const ctx = join(env.scratch, 'attest-ctx');
  writeContext(ctx, env.debian);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = join(env.scratch, 'bench-cosign.key');
  writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const supply = ['--attestation', 'max', '--sign', '--cosign-key', key];
  const tag = Date.now().toString(36);
  const plain: BuildRun[] = [];
  const attested: BuildRun[] = [];
  const load: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    load.push(loadavg()[0]!);
    const a = await kilnBuild(env, ctx, `${env.reg.host}/bench/attest-plain:${tag}-${i}`);
    if (a.m.exitCode !== 0) process.stderr.write(`[bench] kiln output tail:\n${tail(a.lines)}\n`);
    plain.push(a);
    load.push(loadavg()[0]!);
    const b = await kilnBuild(env, ctx, `${env.reg.host}/bench/attest-max:${tag}-${i}`, supply);
    if (b.m.exitCode !== 0) process.stderr.write(`[bench] kiln output tail:\n${tail(b.lines)}\n`);
    attested.push(b);
  }
  const op = `app (apt + COPY ${SOURCE_FILES} files + make + 2nd stage)`;
  // From the digest line (the push done) to the last signature pushed.
  const signS = (r: BuildRun): number => {
    const from = r.lines.find((l) => /image digest sha256:/.test(l.line));
    const to = r.lines.filter((l) => /signed sha256:.*\(key\)/.test(l.line)).pop();
    return from && to ? Number(((to.atMs - from.atMs) / 1000).toFixed(2)) : NaN;
  };
  const rows: Array<Record<string, string | number>> = plain.map((p, i) => {
    const a = attested[i]!;
    return {
      operation: `${op} #${i + 1}`,
      'plain s': p.m.wallSeconds.toFixed(2) + (p.m.exitCode ? ' FAILED' : ''),
      'attest+sign s': a.m.wallSeconds.toFixed(2) + (a.m.exitCode ? ' FAILED' : ''),
      'with/without': (a.m.wallSeconds / p.m.wallSeconds).toFixed(3),
      'SBOM+provenance ms': attestMs(a),
      'sign s': signS(a),
      'plain RSS MB': p.m.maxRssMb,
      'attest RSS MB': a.m.maxRssMb,
    };
  });
  const plainS = median(plain.map((r) => r.m.wallSeconds));
  const attestS = median(attested.map((r) => r.m.wallSeconds));
  const overheadPct = Number(((attestS / plainS - 1) * 100).toFixed(1));
  rows.push({
    operation: `${op}: median of ${RUNS}`,
    'plain s': plainS.toFixed(2),
    'attest+sign s': attestS.toFixed(2),
    'with/without': (attestS / plainS).toFixed(3),
    'SBOM+provenance ms': median(attested.map(attestMs)),
    'sign s': median(attested.map(signS)),
    'plain RSS MB': Math.max(...plain.map((r) => r.m.maxRssMb)),
    'attest RSS MB': Math.max(...attested.map((r) => r.m.maxRssMb)),
  });
  return {
    scenario: 'attest',
    rows,
    metrics: {
      runs: RUNS,
      plainS,
      attestS,
      overheadPct,
      attestMs: median(attested.map(attestMs)),
      // The machine is shared: the 1-minute load average before each build, so a reader can judge.
      loadAvgMin: Number(Math.min(...load).toFixed(2)),
      loadAvgMax: Number(Math.max(...load).toFixed(2)),
      kilnExit: Math.max(...[...plain, ...attested].map((r) => r.m.exitCode)),
    },
  };
}
