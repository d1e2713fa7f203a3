// The layout rules of docs/architecture.md, checked on src/ (runs in `npm test`):
//  1. no import cycle between folders (each top-level file of src/ counts as its own node),
//  2. no function longer than MAX_LINES lines,
//  3. `@actions/*` only under src/ci/github/, `commander` only under src/cli/.
// Exits 1 with one line per violation.
import ts from 'typescript';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX_LINES = 120;
const OWNERS = [
  { pkg: /^@actions\//, dir: 'src/ci/github/' },
  { pkg: /^commander$/, dir: 'src/cli/' },
];

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = resolve(process.argv[2] ?? join(root, 'src'));

function walk(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (/\.(ts|mts)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}

/** `executor` for src/executor/steps/run-step.ts; `options.ts` for src/options.ts. */
function nodeOf(file) {
  const rel = relative(srcDir, file).split(sep);
  return rel.length === 1 ? rel[0] : rel[0];
}

const problems = [];
const edges = new Map(); // node -> Map(node -> example "file -> import")
for (const file of walk(srcDir)) {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const shown = relative(root, file);
  const from = nodeOf(file);
  const specs = [];
  const visit = (n) => {
    if (
      (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) &&
      n.moduleSpecifier &&
      ts.isStringLiteral(n.moduleSpecifier)
    )
      specs.push(n.moduleSpecifier.text);
    else if (
      ts.isCallExpression(n) &&
      n.expression.kind === ts.SyntaxKind.ImportKeyword &&
      n.arguments[0] &&
      ts.isStringLiteral(n.arguments[0])
    )
      specs.push(n.arguments[0].text);
    if (ts.isFunctionLike(n) && n.body) {
      const start = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      const lines = end - start + 1;
      if (lines > MAX_LINES) {
        const name =
          n.name && ts.isIdentifier(n.name)
            ? n.name.text
            : ts.isVariableDeclaration(n.parent) && ts.isIdentifier(n.parent.name)
              ? n.parent.name.text
              : '(anonymous)';
        problems.push(
          `${shown}:${start + 1}: function ${name} is ${lines} lines (at most ${MAX_LINES}): split it`,
        );
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  for (const spec of specs) {
    if (spec.startsWith('.')) {
      const target = resolve(dirname(file), spec);
      if (!target.startsWith(srcDir + sep)) continue;
      const to = nodeOf(target);
      if (to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      if (!edges.get(from).has(to)) edges.get(from).set(to, `${shown} imports ${spec}`);
    } else {
      const relFile = relative(root, file).split(sep).join('/');
      for (const o of OWNERS)
        if (o.pkg.test(spec) && !relFile.startsWith(o.dir))
          problems.push(`${shown}: imports ${spec}, which only ${o.dir} may import`);
    }
  }
}

// Cycles: Tarjan's strongly connected components over the folder graph.
let index = 0;
const idx = new Map(),
  low = new Map(),
  stack = [],
  on = new Set();
const nodes = new Set([...edges.keys(), ...[...edges.values()].flatMap((m) => [...m.keys()])]);
function strong(v) {
  idx.set(v, index);
  low.set(v, index);
  index++;
  stack.push(v);
  on.add(v);
  for (const w of edges.get(v)?.keys() ?? []) {
    if (!idx.has(w)) {
      strong(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const comp = [];
    let w;
    do {
      w = stack.pop();
      on.delete(w);
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1) {
      const set = new Set(comp);
      const why = comp.flatMap((a) =>
        [...(edges.get(a) ?? [])].filter(([b]) => set.has(b)).map(([, e]) => `    ${e}`),
      );
      problems.push(`import cycle between folders ${comp.sort().join(', ')}:\n${why.join('\n')}`);
    }
  }
}
for (const v of [...nodes].sort()) if (!idx.has(v)) strong(v);

if (problems.length) {
  console.error(`check-layout: ${problems.length} problem(s)\n${problems.join('\n')}`);
  process.exit(1);
}
console.log(
  `check-layout: ok (${nodes.size} folders, no cycles, functions <= ${MAX_LINES} lines, owned imports)`,
);
