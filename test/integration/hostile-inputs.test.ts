/**
 * Hostile or broken input through the real CLI: a RUN that prints a build secret and fails (the
 * secret must not appear anywhere kiln prints: the stream, the error's hint, JSON logs), the
 * context bind mount seen through .dockerignore as COPY sees it, and bad flags and Dockerfiles that
 * must each give a usage, Dockerfile or context error with a position, never exit 70.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useBusyboxRegistry } from '../helpers/busybox-registry.ts';
import { kiln } from '../helpers/cli.ts';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (chroot rung)';
const fx = useBusyboxRegistry('kiln-hostile-inputs');
let n = 0;

/** A context with `files` (Dockerfile included) in a fresh directory; returns its path. */
async function context(files: Record<string, string | Buffer>): Promise<string> {
  const dir = join(fx.dir, `ctx-${++n}`);
  await mkdir(dir, { recursive: true });
  for (const [name, body] of Object.entries(files)) await writeFile(join(dir, name), body);
  return dir;
}

function build(ctx: string, extra: string[] = []) {
  return kiln([
    'build',
    '-c',
    ctx,
    '-d',
    `${fx.reg.host}/hostile/inputs:${n}`,
    '--insecure-registry',
    fx.reg.host,
    '--no-push',
    '--isolation',
    'chroot',
    '--work-dir',
    join(fx.dir, 'work'),
    ...extra,
  ]);
}

const SECRET = 'kiln-s3cret-Value-4f9a';

describe('secrets and ignored files do not leak', { skip }, () => {
  for (const format of ['text', 'json']) {
    test(`a failing RUN that prints a secret shows *** everywhere (${format} logs)`, async () => {
      const secretFile = join(fx.dir, `secret-${format}`);
      await writeFile(secretFile, `${SECRET}\n`);
      const ctx = await context({
        // Split across two writes, with a pause: the stream filter must still catch it.
        Dockerfile: `FROM ${fx.base}
RUN --mount=type=secret,id=tok \\
    printf 'start %s' "$(cut -c1-8 /run/secrets/tok)" && sleep 0.3 && \\
    printf '%s end\\n' "$(cut -c9- /run/secrets/tok)" && \\
    echo "token=$(cat /run/secrets/tok)" && exit 3
`,
      });
      const r = await build(ctx, ['--secret', `id=tok,src=${secretFile}`, '--log-format', format]);
      assert.equal(r.code, 7, r.stderr);
      const all = r.stdout + r.stderr;
      assert.ok(!all.includes(SECRET), `secret printed:\n${all}`);
      assert.ok(!all.includes(SECRET.slice(8)), `secret tail printed:\n${all}`);
      assert.ok(!all.includes(SECRET.slice(0, 8) + ' '), `secret head printed:\n${all}`);
      assert.match(all, /start \*\*\* end/);
      assert.match(all, /token=\*\*\*/);
      assert.match(all, /last output:/);
    });
  }

  test('the context bind mount sees the context through .dockerignore, as COPY does', async () => {
    const ctx = await context({
      Dockerfile: `FROM ${fx.base}
RUN --mount=type=bind,target=/ctx ls -a /ctx > /seen && ! test -e /ctx/secret.txt && ! test -e /ctx/sub/key
`,
      '.dockerignore': 'secret.txt\nsub/key\n',
      'secret.txt': SECRET,
      'kept.txt': 'kept',
    });
    await mkdir(join(ctx, 'sub'));
    await writeFile(join(ctx, 'sub', 'key'), SECRET);
    await writeFile(join(ctx, 'sub', 'other'), 'o');
    const r = await build(ctx);
    assert.equal(r.code, 0, r.stderr);

    const named = await context({
      Dockerfile: `FROM ${fx.base}\nRUN --mount=type=bind,source=secret.txt,target=/s cat /s\n`,
      '.dockerignore': 'secret.txt\n',
      'secret.txt': SECRET,
    });
    const r2 = await build(named);
    assert.equal(r2.code, 4, r2.stderr);
    assert.match(
      r2.stderr,
      /Dockerfile:2: RUN --mount=type=bind: source secret\.txt .*\.dockerignore excludes it/,
    );
    assert.ok(!r2.stderr.includes(SECRET));
  });
});

describe('bad input is a usage, Dockerfile or context error, never exit 70', { skip }, () => {
  const cases: Array<{
    name: string;
    files?: () => Record<string, string | Buffer>;
    args?: (ctx: string) => string[];
    code: number;
    re: RegExp;
  }> = [
    {
      name: '--destination with port 99999',
      args: () => ['-d', '127.0.0.1:99999/x:1'],
      code: 2,
      re: /invalid image reference "127\.0\.0\.1:99999\/x:1": port 99999 is out of range/,
    },
    {
      name: '--work-dir that is a file',
      args: (ctx) => ['--work-dir', join(ctx, 'Dockerfile')],
      code: 8,
      re: /cannot create the work directory .*Dockerfile \(EEXIST\)/,
    },
    {
      name: '--cache-dir that is a file',
      args: (ctx) => ['--cache-dir', join(ctx, 'Dockerfile'), '--cache'],
      code: 2,
      re: /--cache-dir .*Dockerfile: cannot use it/,
    },
    {
      name: 'a RUN line with a NUL byte',
      files: () => ({ Dockerfile: `FROM ${fx.base}\nRUN echo a\0b\n` }),
      code: 3,
      re: /Dockerfile:2: RUN command contains a NUL byte/,
    },
    {
      name: 'a RUN line of 10 MB',
      files: () => ({ Dockerfile: `FROM ${fx.base}\nRUN echo ${'x'.repeat(10 << 20)}\n` }),
      code: 3,
      re: /Dockerfile:2: RUN command is 1048\d{4} bytes; the kernel takes at most 131071/,
    },
    {
      name: 'a missing bind-mount source',
      files: () => ({ Dockerfile: `FROM ${fx.base}\nRUN --mount=type=bind,source=nope,target=/n ls /n\n` }),
      code: 4,
      re: /Dockerfile:2: RUN --mount=type=bind: source nope is not in the build context/,
    },
    {
      name: 'a binary Dockerfile: its escape sequences are not echoed',
      files: () => ({
        Dockerfile: Buffer.from('\x7fELF\x02\x01\x1b[2J\x1b]0;pwned\x07\nFROM x\n', 'latin1'),
      }),
      code: 3,
      re: /\\x1b\[2J\\x1b\]0;pwned\\x07/,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const ctx = await context(c.files?.() ?? { Dockerfile: `FROM ${fx.base}\nRUN true\n` });
      const r = await build(ctx, c.args?.(ctx) ?? []);
      assert.equal(r.code, c.code, r.stderr);
      assert.match(r.stderr, c.re);
      assert.doesNotMatch(r.stderr, /internal error|cannot start \/usr\/bin\/unshare/);

      assert.doesNotMatch(r.stderr, /[\x00-\x08\x0b-\x1f\x7f]/, 'raw control characters printed');
    });
  }
});
