// Bundles src/ into dist/: the CLI and the action entry points. Output must be deterministic
// (test/unit/dist.test.ts rebuilds into a temp dir and compares byte for byte).
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
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
await build({
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
  // Some CommonJS dependencies call require(); give the ESM bundle a real one.
  banner: {
    js: "import { createRequire as __kilnCreateRequire } from 'node:module'; const require = __kilnCreateRequire(import.meta.url);",
  },
  outExtension: { '.js': '.js' },
});
