/**
 * Every field of BuildOptions (and of the option types it is made of) is read by the core: a field
 * that only the CLI writes is an option parsed for nothing. Uses the TypeScript checker, so a read is
 * a property access or destructuring that resolves to the field itself, outside src/cli/ and the
 * files that declare the types; an assignment to the field is not a read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DECLARING = ['src/options.ts', 'src/registry/options.ts'];
const TYPES = [
  'BuildOptions',
  'OutputOptions',
  'CacheOptions',
  'GitContextOptions',
  'SecretSpec',
  'RegistryOptions',
  'RegistryCredential',
];

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** `Type.field` for every field of TYPES that nothing outside the CLI reads, for the sources in `srcDir`. */
function unreadFields(
  srcDir: string,
  declaring: string[] = DECLARING.map((f) => join(ROOT, f)),
  minFields = 40,
): string[] {
  const files = walk(srcDir);
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    allowImportingTsExtensions: true,
    noEmit: true,
    strict: true,
  });
  const checker = program.getTypeChecker();
  const fields = new Map<ts.Declaration, string>();
  for (const file of declaring) {
    const sf = program.getSourceFile(file);
    assert.ok(sf, file);
    sf.forEachChild((n) => {
      if (!ts.isInterfaceDeclaration(n) || !TYPES.includes(n.name.text)) return;
      for (const m of n.members)
        if (ts.isPropertySignature(m) && ts.isIdentifier(m.name))
          fields.set(m, `${n.name.text}.${m.name.text}`);
    });
  }
  assert.ok(fields.size >= minFields, `found ${fields.size} fields`);
  const read = new Set<string>();
  const mark = (sym: ts.Symbol | undefined): void => {
    for (const d of sym?.declarations ?? []) {
      const name = fields.get(d);
      if (name) read.add(name);
    }
  };
  for (const sf of program.getSourceFiles()) {
    const rel = relative(srcDir, sf.fileName);
    if (rel.startsWith('..') || rel.startsWith('cli/') || declaring.includes(sf.fileName)) continue;
    const visit = (n: ts.Node): void => {
      if (ts.isPropertyAccessExpression(n)) {
        const p = n.parent;
        const written =
          ts.isBinaryExpression(p) && p.left === n && p.operatorToken.kind === ts.SyntaxKind.EqualsToken;
        if (!written) mark(checker.getSymbolAtLocation(n.name));
      } else if (ts.isBindingElement(n) && ts.isObjectBindingPattern(n.parent)) {
        const key = n.propertyName ?? n.name;
        if (ts.isIdentifier(key)) mark(checker.getTypeAtLocation(n.parent).getProperty(key.text));
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return [...fields.values()].filter((f) => !read.has(f)).sort();
}

test('every BuildOptions field is read outside the CLI', () => {
  assert.deepEqual(unreadFields(join(ROOT, 'src')), []);
});

test('the check finds a field that only the CLI writes', async () => {
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'kiln-optread-'));
  try {
    mkdirSync(join(dir, 'cli'));
    writeFileSync(
      join(dir, 'options.ts'),
      'export interface BuildOptions { a: string; b: number; c: boolean }\n',
    );
    writeFileSync(
      join(dir, 'core.ts'),
      "import type { BuildOptions } from './options.ts';\nexport const f = (o: BuildOptions) => { const { b } = o; o.c = true; return o.a + b; };\n",
    );
    writeFileSync(
      join(dir, 'cli', 'x.ts'),
      "import type { BuildOptions } from '../options.ts';\nexport const g = (o: BuildOptions) => o.c;\n",
    );
    const unread = unreadFields(dir, [join(dir, 'options.ts')], 3);
    assert.ok(unread.includes('BuildOptions.c'), unread.join(' '));
    assert.ok(!unread.includes('BuildOptions.a') && !unread.includes('BuildOptions.b'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
