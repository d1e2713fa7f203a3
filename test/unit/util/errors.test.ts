import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, EXIT_CODES, KilnError, type ErrorCategory } from '../../../src/util/errors.ts';

const SRC = new URL('../../../src', import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('every error code belongs to exactly one category', () => {
  const owner = new Map<string, ErrorCategory>();
  for (const [category, codes] of Object.entries(ERROR_CODES) as Array<[ErrorCategory, readonly string[]]>) {
    for (const code of codes) {
      assert.equal(owner.get(code), undefined, `${code} is listed under ${owner.get(code)} and ${category}`);
      owner.set(code, category);
    }
  }
  assert.ok(owner.size > 100, `${owner.size} codes`);
});

test('every listed code is raised somewhere in src/ (the list holds no dead codes)', () => {
  const text = sources(SRC)
    .filter((f) => !f.endsWith('util/errors.ts'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const unused = Object.values(ERROR_CODES)
    .flat()
    .filter((code) => code !== 'UNEXPECTED' && !text.includes(`'${code}'`));
  assert.deepEqual(unused, []);
});

test('every category has a documented exit code, and only internal errors exit 70', () => {
  for (const category of Object.keys(ERROR_CODES) as ErrorCategory[]) {
    assert.equal(typeof EXIT_CODES[category], 'number', category);
    if (category !== 'internal') assert.notEqual(EXIT_CODES[category], 70, category);
  }
});

test('a KilnError carries its category, code, position and hint into format()', () => {
  const e = new KilnError('dockerfile', 'BAD_FLAG', 'COPY: flag "x" must start with --', {
    position: { file: 'Dockerfile', line: 3, column: 6 },
    hint: 'write --x',
  });
  assert.equal(e.category, 'dockerfile');
  assert.equal(e.format(), 'Dockerfile:3:6: COPY: flag "x" must start with --\n  hint: write --x');
});
