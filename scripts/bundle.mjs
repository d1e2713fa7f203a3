// Bundles src/ into dist/: the CLI and the action entry points. Output must be deterministic
// (test/unit/dist.test.ts rebuilds into a temp dir and compares byte for byte).
import { build } from 'esbuild';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = resolve(process.argv[2] ?? resolve(root, 'dist'));

export const entries = {
  cli: 'src/cli/main.ts',
  'action/main': 'src/ci/github/entry-main.ts',
  'action/post': 'src/ci/github/entry-post.ts',
  gitlab: 'src/ci/gitlab/entry.ts',
};

mkdirSync(outdir, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, resolve(root, v)])),
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  splitting: false,
  legalComments: 'none',
  logLevel: 'warning',
  // Worktrees link node_modules from the main checkout: keep the link's path, not the target's, so
  // the bundle's module comments are the same wherever it is built.
  preserveSymlinks: true,
  // Some CommonJS dependencies call require() or read __dirname/__filename (@cyclonedx's resource
  // paths): give the ESM bundle real ones.
  banner: {
    js:
      "import { createRequire as __kilnCreateRequire } from 'node:module'; const require = __kilnCreateRequire(import.meta.url);" +
      " import { fileURLToPath as __kilnFileURLToPath } from 'node:url'; const __filename = __kilnFileURLToPath(import.meta.url);" +
      " import { dirname as __kilnDirname } from 'node:path'; const __dirname = __kilnDirname(__filename);",
  },
  outExtension: { '.js': '.js' },
  // @cyclonedx/cyclonedx-library loads its XML plug-ins with a guarded require() and kiln writes JSON
  // only: leave them out of the bundle (at run time the library reports them absent, as intended).
  external: ['xmlbuilder2', 'libxmljs2'],
  write: false,
});

// esbuild escapes non-ASCII in strings and identifiers but not in comments or regular expression
// literals, and a few of both in dependencies hold characters such as U+2019 or U+00B5. One is
// enough for V8 to hold the whole 4.3 MB bundle as a two-byte string (8.6 MB) and to decode it the
// slow way at every start. Each UTF-16 unit outside ASCII is written as a \uXXXX escape, which means
// the same character in a regular expression (with or without the u flag) and is inert in a comment.
for (const f of result.outputFiles) {
  mkdirSync(dirname(f.path), { recursive: true });
  const text = f.text.replace(/[^\x00-\x7f]/g, (u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, '0')}`);
  writeFileSync(f.path, text);
  // The CLI starts with a shebang and is run as a program (package.json bin).
  chmodSync(f.path, text.startsWith('#!') ? 0o755 : 0o644);
}
