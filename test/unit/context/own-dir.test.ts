/**
 * kiln's own layer cache inside the context (GitLab keeps it in the project dir) is left out of the
 * context, even against a `!` re-include; outside the context nothing changes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  contextIgnore,
  excludeOwnDir,
  IgnoreMatcher,
  parseDockerignore,
} from '../../../src/context/dockerignore.ts';

const CTX = '/builds/acme/shop';

test('a cache dir inside the context is ignored, whatever .dockerignore says', () => {
  const patterns = parseDockerignore('*.log\n!.kiln-cache\n!sub/.cache\n', '.dockerignore');
  for (const [dir, rel] of [
    [join(CTX, '.kiln-cache'), '.kiln-cache'],
    [join(CTX, 'sub/.cache'), 'sub/.cache'],
  ] as const) {
    const m = new IgnoreMatcher(excludeOwnDir(patterns, CTX, dir));
    assert.equal(m.matches(rel), true);
    assert.equal(m.matches(`${rel}/slots/x.json`), true);
    assert.equal(m.matches('app.log'), true);
    assert.equal(m.matches('src/main.ts'), false);
  }
});

test('a cache dir outside the context, the context itself, or none: patterns unchanged', () => {
  const patterns = parseDockerignore('*.log\n', '.dockerignore');
  assert.equal(excludeOwnDir(patterns, CTX, '/tmp/kiln-cache'), patterns);
  assert.equal(excludeOwnDir(patterns, join(CTX, 'api'), join(CTX, '.kiln-cache')), patterns);
  assert.equal(excludeOwnDir(patterns, CTX, CTX), patterns);
  assert.equal(excludeOwnDir(patterns, CTX, undefined), patterns);
});

test('contextIgnore: the .dockerignore of the context plus the cache dir', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-own-dir-'));
  writeFileSync(join(dir, '.dockerignore'), 'node_modules\n');
  const got = await contextIgnore(dir, join(dir, 'Dockerfile'), join(dir, '.kiln-cache'));
  assert.deepEqual(
    got.map((p) => p.pattern),
    ['node_modules', '.kiln-cache'],
  );
});
