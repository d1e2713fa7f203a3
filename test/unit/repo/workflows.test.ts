/** This repository's own GitHub workflows are valid workflow files and run the README's test command. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';

const execFileP = promisify(execFile);
const ROOT = new URL('../../..', import.meta.url).pathname;
const DIR = join(ROOT, '.github/workflows');

for (const f of readdirSync(DIR).filter((n) => n.endsWith('.yml'))) {
  test(`.github/workflows/${f} passes @action-validator/cli`, async () => {
    await execFileP(join(ROOT, 'node_modules/.bin/action-validator'), [join(DIR, f)]);
  });
}

test('ci.yml runs npm test and checks that dist/ is the bundle of src/', () => {
  const wf = parse(readFileSync(join(DIR, 'ci.yml'), 'utf8')) as {
    jobs: Record<string, { steps: Array<{ run?: string }> }>;
  };
  const runs = Object.values(wf.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ''));
  assert.ok(runs.some((r) => /\bnpm test\b/.test(r)));
  assert.ok(runs.some((r) => r.includes('npm run bundle') && r.includes('git diff --exit-code')));
});
