/**
 * Where the Dockerfile comes from: as given, else relative to the context; the default name falls
 * back to <context>/Containerfile (buildah's rule); the not-found hint names each place once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDockerfile } from '../../../src/plan/load.ts';
import { KilnError } from '../../../src/util/errors.ts';

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-load-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

async function notFound(ctx: string, dockerfile: string): Promise<KilnError> {
  const e = await loadDockerfile(ctx, dockerfile).then(
    () => assert.fail('expected DOCKERFILE_NOT_FOUND'),
    (x: unknown) => x,
  );
  assert.ok(e instanceof KilnError);
  assert.equal(e.code, 'DOCKERFILE_NOT_FOUND');
  return e;
}

test('a context with only a Containerfile builds it under the default name', async () => {
  const dir = project({ 'app/Containerfile': 'FROM scratch\n' });
  const got = await loadDockerfile(join(dir, 'app'), 'Dockerfile');
  assert.equal(got.path, join(dir, 'app/Containerfile'));
  assert.equal(got.text, 'FROM scratch\n');
});

test('a Dockerfile wins over a Containerfile in the same context', async () => {
  const dir = project({ Dockerfile: 'FROM a\n', Containerfile: 'FROM b\n' });
  assert.equal((await loadDockerfile(dir, 'Dockerfile')).text, 'FROM a\n');
});

test('an explicit file name does not fall back to Containerfile', async () => {
  const dir = project({ Containerfile: 'FROM b\n' });
  const e = await notFound(dir, 'prod.Dockerfile');
  assert.doesNotMatch(e.hint ?? '', /Containerfile/);
});

test('not found: the hint names every place looked at, each once', async () => {
  const dir = project({});
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const e = await notFound(dir, 'Dockerfile');
    const hint = e.hint ?? '';
    assert.equal(hint.split(join(dir, 'Dockerfile')).length - 1, 1, hint);
    assert.ok(hint.includes(`${join(dir, 'Dockerfile')} and ${join(dir, 'Containerfile')}`), hint);
  } finally {
    process.chdir(cwd);
  }
  const sub = project({});
  const e = await notFound(join(sub, 'ctx'), 'Dockerfile');
  assert.ok(
    (e.hint ?? '').includes(
      `${join(process.cwd(), 'Dockerfile')}, ${join(sub, 'ctx/Dockerfile')} and ${join(sub, 'ctx/Containerfile')}`,
    ),
    e.hint,
  );
});
