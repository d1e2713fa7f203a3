import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

test('committed dist/ is byte-identical to a fresh bundle of src/', () => {
  const out = mkdtempSync(join(tmpdir(), 'kiln-dist-'));
  try {
    execFileSync(process.execPath, ['scripts/bundle.mjs', out], { stdio: 'pipe' });
    const fresh = files(out)
      .map((f) => relative(out, f))
      .sort();
    const committed = files('dist')
      .map((f) => relative('dist', f))
      .sort();
    assert.deepEqual(committed, fresh, 'dist/ holds other files than the bundle produces');
    for (const f of fresh) {
      assert.ok(
        readFileSync(join(out, f)).equals(readFileSync(join('dist', f))),
        `dist/${f} differs from a fresh bundle: run \`npm run bundle\` and commit dist/`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
