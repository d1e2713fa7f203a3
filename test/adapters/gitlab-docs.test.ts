/**
 * gitlab/README.md against the component: the inputs table lists every input of
 * templates/build.yml once, in order, with its default; the YAML examples include the component
 * pinned to a major version and use only inputs it declares.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadTemplate, ROOT } from './fixtures/gitlab-template.ts';

const README = readFileSync(join(ROOT, 'gitlab/README.md'), 'utf8');
const { spec } = loadTemplate().header;

function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `section ${title}`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** Rows of the first table in the section, as cells (backticks kept). */
function table(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('| '))
    .slice(2)
    .map((l) =>
      l
        .slice(1, -1)
        .split(' | ')
        .map((c) => c.trim()),
    );
}

test('the inputs table lists every template input once, in order, with its default', () => {
  const rows = table(section('Inputs'));
  const names = rows.map((r) => r[0]!.replace(/^`|`$/g, ''));
  assert.deepEqual(names, Object.keys(spec.inputs));
  for (const [cell, name, dflt] of rows.map(
    (r) => [r[1]!, r[0]!.replace(/`/g, ''), spec.inputs[r[0]!.replace(/`/g, '')]!.default] as const,
  )) {
    const want = dflt === '' ? '–' : `\`${String(dflt)}\``;
    assert.equal(cell, want, `default of ${name}`);
  }
  for (const r of rows) assert.ok(r[2] && r[2].length > 5, `${r[0]} has a meaning`);
});

test('the examples pin the component to a major version and use only declared inputs', () => {
  const blocks = [...README.matchAll(/```yaml\n([\s\S]*?)```/g)].map(
    (m) => parse(m[1]!) as Record<string, unknown>,
  );
  const includes = blocks.flatMap((b) =>
    Array.isArray(b.include) ? (b.include as Record<string, unknown>[]) : [],
  );
  assert.ok(includes.length >= 3, 'a quick start and a two-image example');
  const jobNames = new Set<string>();
  for (const inc of includes) {
    assert.match(String(inc.component), /^\$CI_SERVER_FQDN\/<group>\/kiln\/build@1$/);
    const given = Object.keys((inc.inputs ?? {}) as Record<string, unknown>);
    assert.deepEqual(
      given.filter((k) => !(k in spec.inputs)),
      [],
    );
    const name = (inc.inputs as Record<string, unknown> | undefined)?.['job-name'];
    if (typeof name === 'string') {
      assert.ok(!jobNames.has(name), 'each include has its own job name');
      jobNames.add(name);
    }
  }
  assert.equal(jobNames.size, 2);
});
