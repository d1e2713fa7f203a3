/**
 * `npm run bench [-- registry|tree|app|cache|partial|restore|snapshot|attest|multi-platform ...]`: runs the scenarios (all by default) against a throwaway
 * registry, prints one table per scenario (kiln vs the reference tool: both wall times, kiln/ref and
 * kiln's peak RSS by GNU time) and writes everything as JSON to bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SetupError } from '../test/helpers/setup-error.ts';
import { startBenchEnv } from './env.ts';
import type { BenchEnv, ScenarioResult } from './env.ts';
import { printScenario } from './measure.ts';

type Runner = (env: BenchEnv) => Promise<ScenarioResult>;
const SCENARIOS: Record<string, () => Promise<Runner>> = {
  registry: async () => (await import('./registry.ts')).run,
  tree: async () => (await import('./run-tree.ts')).run,
  app: async () => (await import('./app.ts')).run,
  cache: async () => (await import('./cache.ts')).run,
  partial: async () => (await import('./cache.ts')).runPartial,
  restore: async () => (await import('./restore.ts')).run,
  snapshot: async () => (await import('./snapshot.ts')).run,
  attest: async () => (await import('./attest.ts')).run,
  'multi-platform': async () => (await import('./multi-platform.ts')).run,
};

const asked = process.argv.slice(2).filter((a) => a !== '--');
const names = asked.length === 0 || asked.includes('all') ? Object.keys(SCENARIOS) : asked;
for (const n of names) {
  if (!Object.hasOwn(SCENARIOS, n)) {
    throw new SetupError('usage', 'BENCH_UNKNOWN_SCENARIO', `unknown bench scenario "${n}"`, {
      hint: `choose from ${Object.keys(SCENARIOS).join(', ')} (all by default)`,
    });
  }
}

const env = await startBenchEnv();
const results: ScenarioResult[] = [];
try {
  for (const n of names) {
    process.stderr.write(`[bench] scenario ${n}\n`);
    const r = await (await SCENARIOS[n]!())(env);
    results.push(r);
    printScenario(r);
  }
} finally {
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'latest.json'),
    JSON.stringify({ date: new Date().toISOString(), buildahDriver: env.buildahDriver, results }, null, 2) +
      '\n',
  );
  await env.stop();
}
