/**
 * Every message a user may see names only flags that exist. The test reads every string of src/
 * that is prose (has a space) and names a `--flag` (hints, errors, warnings, help), and accepts each
 * flag only as one of:
 *  - a kiln flag (`kiln build`, `plan`, `warm`, or another command's own option), with a value among its choices when it has them,
 *    and never, in a hint, a flag that is refused or does nothing;
 *  - a Dockerfile instruction's flag (RUN --mount, COPY --chown, …) that kiln's parser accepts;
 *  - another tool's flag, in a string that names that tool.
 * The classifier is tried on known-bad strings first, so that the test can fail (the getfattr hint
 * once named `--snapshot=walk`, which is not a flag).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { allFlags, WARM_FLAGS } from '../../../src/cli/flag-table.ts';
import type { FlagSpec } from '../../../src/cli/flag-table.ts';
import { buildProgram } from '../../../src/cli/program.ts';
import { INSTRUCTION_FLAGS } from '../../../src/dockerfile/instructions.ts';

const REPO = new URL('../../..', import.meta.url).pathname;
const SRC = join(REPO, 'src');

/** Shell code kiln generates (the namespaced RUN set-up, PRoot's /proc/sys guard), not messages: its `--bind` is mount(8)'s. */
const NOT_MESSAGES = new Set(['src/isolation/namespaced-script.ts']);

/** Flags of other tools that messages quote, and the word the same string must contain. */
const OTHER_TOOLS: Record<string, RegExp> = {
  '--add-subuids': /\busermod\b/,
  '--add-subgids': /\busermod\b/,
  // docker/podman run options, in hints about the container kiln runs in.
  '--security-opt': /\bcontainer\b/,
  '--privileged': /\bcontainer\b/,
};

const kiln = new Map<string, FlagSpec>();
for (const [, f] of [...allFlags(), ...(Object.entries(WARM_FLAGS) as Array<[string, FlagSpec]>)]) {
  kiln.set(f.long, f);
  for (const a of f.aliases ?? []) kiln.set(a, f);
}
// Options that commands declare to commander themselves (probe's, inspect's), besides the table's.
const PROGRAM = new Set(['--help', '--version']);
for (const c of buildProgram(() => undefined).commands)
  for (const o of c.options) if (o.long && !kiln.has(o.long)) PROGRAM.add(o.long);
const dockerfileFlags = new Set(Object.values(INSTRUCTION_FLAGS).flatMap((fs) => Object.keys(fs)));
const INSTRUCTION = /\b(FROM|RUN|COPY|ADD|HEALTHCHECK)\b/;

interface Message {
  where: string;
  text: string;
  /** Inside a `hint` property or a `hint` parameter's argument. */
  hint: boolean;
}

/** What is wrong with the flags `m` names; empty when nothing. */
export function problems(m: Message): string[] {
  const out: string[] = [];
  for (const match of m.text.matchAll(/(?<![\w-])(--[a-zA-Z][\w-]*)(?:[= ]([a-z][\w-]*))?/g)) {
    const [, flag, value] = match as unknown as [string, string, string | undefined];
    const spec = kiln.get(flag);
    if (spec) {
      if (spec.type === 'choice' && value && match[0].includes('=') && !spec.choices.includes(value))
        out.push(`${flag}=${value}: not one of ${spec.choices.join(', ')}`);
      if (m.hint && ('refused' in spec.lands || 'ignored' in spec.lands) && !m.where.includes('flag-table'))
        out.push(`${flag}: a hint points at a flag that is refused or does nothing`);
      continue;
    }
    if (PROGRAM.has(flag)) continue;
    const name = flag.slice(2);
    if (
      dockerfileFlags.has(name) &&
      (INSTRUCTION.test(m.text) || /^src\/(dockerfile|executor|plan)\//.test(m.where))
    )
      continue;
    const tool = OTHER_TOOLS[flag];
    if (tool && tool.test(m.text)) continue;
    out.push(`${flag}: not a kiln flag, a Dockerfile flag, nor another named tool's`);
  }
  return out;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Whether `n` is (inside) a `hint: …` property value or an argument for a parameter named `hint`. */
function inHint(n: ts.Node): boolean {
  for (let p: ts.Node | undefined = n; p && !ts.isSourceFile(p); p = p.parent) {
    if (ts.isPropertyAssignment(p) && p.name.getText() === 'hint') return true;
    if (ts.isShorthandPropertyAssignment(p) && p.name.text === 'hint') return true;
    if (ts.isVariableDeclaration(p) && /hint/i.test(p.name.getText())) return true;
    if (ts.isStatement(p)) return false;
  }
  return false;
}

function messages(): Message[] {
  const out: Message[] = [];
  for (const file of walk(SRC)) {
    const where = relative(REPO, file);
    if (NOT_MESSAGES.has(where)) continue;
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node): void => {
      let text: string | undefined;
      if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) text = n.text;
      else if (ts.isTemplateExpression(n))
        text = [n.head.text, ...n.templateSpans.map((s) => s.literal.text)].join('${}');
      if (text !== undefined && /\S\s+\S/.test(text) && /(?<![\w-])--[a-zA-Z]/.test(text)) {
        const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
        out.push({ where: `${where}:${line}`, text, hint: inHint(n) });
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return out;
}

test('the check fails on a hint naming no flag, a bad choice, or a refused flag', () => {
  const at = (text: string, hint = true): Message => ({ where: 'src/fs/xattr.ts:1', text, hint });
  assert.equal(problems(at('or build with --snapshot=walk')).length, 1);
  assert.equal(problems(at('or build with --compression=lz4')).length, 1);
  assert.deepEqual(problems(at('or build with --compression=zstd')), []);
  assert.equal(problems(at('or build with --snapshot-mode=time')).length, 1, 'ignored: it does nothing');
  assert.equal(problems(at('pass --bucket instead')).length, 1, '--bucket is refused');
  assert.equal(problems(at('run usermod --add-subuids 1-2 u')).length, 0);
  assert.equal(problems(at('run --add-subuids 1-2 u')).length, 1, 'the tool must be named');
  assert.equal(problems(at('use RUN --mount=type=cache')).length, 0);
  assert.equal(problems(at('use RUN --mounts=type=cache')).length, 1);
});

test('every message in src names only flags that exist', () => {
  const all = messages();
  // The scan sees the messages (a broken scan would pass vacuously).
  assert.ok(all.length > 50, String(all.length));
  assert.ok(all.filter((m) => m.hint).length > 15, 'hints are recognised');
  const bad = all.flatMap((m) => problems(m).map((p) => `${m.where}: ${p}\n    ${m.text.slice(0, 160)}`));
  assert.deepEqual(bad, []);
});
