import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, symlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  IgnoreMatcher,
  cleanPath,
  listContextFiles,
  loadIgnoreFile,
  parseDockerignore,
} from '../../../src/context/dockerignore.ts';
import { KilnError } from '../../../src/util/errors.ts';

const matcher = (text: string): IgnoreMatcher => new IgnoreMatcher(parseDockerignore(text, '.dockerignore'));

describe('parseDockerignore: ReadAll cleaning', () => {
  const cases: Array<[text: string, want: string[]]> = [
    ['./a', ['a']],
    ['/a', ['a']],
    ['/', ['/']],
    ['.', ['.']],
    ['a/../b', ['b']],
    ['../a', ['../a']],
    ['a//b/', ['a/b']],
    ['!./x/', ['!x']],
    ['! a/b ', ['!a/b']],
    ['#x\n\n   \n\ty\t', ['y']],
    ['  # not a comment', ['# not a comment']],
    ['\uFEFFa\r\nb\r\n', ['a', 'b']],
    ['/a/../../b', ['b']],
  ];
  for (const [text, want] of cases) {
    test(`${JSON.stringify(text)} -> ${JSON.stringify(want)}`, () => {
      const got = parseDockerignore(text, 'f').map((p) => (p.exclusion ? '!' : '') + p.pattern);
      assert.deepEqual(got, want);
    });
  }

  test('line numbers count comments and blank lines', () => {
    const got = parseDockerignore('# c\n\na\n!b\n', 'f');
    assert.deepEqual(
      got.map((p) => [p.pattern, p.exclusion, p.line]),
      [
        ['a', false, 3],
        ['b', true, 4],
      ],
    );
  });
});

describe('IgnoreMatcher.matches', () => {
  const cases: Array<[patterns: string, file: string, ignored: boolean]> = [
    // Docker docs examples
    ['*/temp*', 'somedir/temporary.txt', true],
    ['*/temp*', 'somedir/temp', true],
    ['*/temp*', 'temp', false],
    ['*/temp*', 'a/b/temp', false],
    ['*/*/temp*', 'somedir/subdir/temporary.txt', true],
    ['*/*/temp*', 'somedir/temporary.txt', false],
    ['temp?', 'tempa', true],
    ['temp?', 'tempab', false],
    ['temp?', 'temp', false],
    ['temp?', 'dir/tempa', false],
    ['**/*.go', 'x.go', true],
    ['**/*.go', 'a/b/x.go', true],
    ['**/*.go', 'x.golang', false],
    ['*.md\n!README.md', 'a.md', true],
    ['*.md\n!README.md', 'README.md', false],
    ['*.md\n!README.md', 'docs/a.md', false],
    ['*.md\n!README*.md\nREADME-secret.md', 'README-secret.md', true],
    ['*.md\n!README*.md\nREADME-secret.md', 'README-x.md', false],
    ['*.md\n!README*.md\nREADME-secret.md', 'other.md', true],
    ['*.md\nREADME-secret.md\n!README*.md', 'README-secret.md', false],
    // cleaning, on both sides
    ['./a', 'a', true],
    ['a/../b', 'b', true],
    ['a/../b', 'a', false],
    ['/a', 'a', true],
    ['a//b', 'a/b', true],
    ['a/', 'a/x', true],
    ['a', './a', true],
    ['a/b', 'a//b', true],
    // comments and blank lines
    ['#a\n\n\nb', 'a', false],
    ['#a\n\n\nb', 'b', true],
    ['  #a', '#a', true],
    ['a\r\nb\r\n', 'b', true],
    // ** at start, middle, end
    ['**/foo', 'foo', true],
    ['**/foo', 'a/b/foo', true],
    ['**/.foo', 'bar.foo', false],
    ['a/**/b', 'a/b', true],
    ['a/**/b', 'a/x/y/b', true],
    ['a/**/b', 'a/xb', false],
    ['a/**', 'a/x/y', true],
    ['a/**', 'a', false],
    ['**', 'any/thing/at/all', true],
    // classes, ?, * and escapes
    ['[abc].txt', 'b.txt', true],
    ['[abc].txt', 'd.txt', false],
    ['[a-c].txt', 'c.txt', true],
    ['[^a-c].txt', 'd.txt', true],
    ['[^a-c].txt', 'a.txt', false],
    ['[!a].txt', '!.txt', true], // Go's Match has no `!` negation: `!` is a member
    ['[!a].txt', 'b.txt', false],
    ['[\\]].txt', '].txt', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'axb', false],
    ['\\?', '?', true],
    ['a\\[b', 'a[b', true],
    ['a?b', 'a/b', false],
    ['a*c', 'ab/c', false],
    ['a+b', 'a+b', true],
    ['a+b', 'aab', false],
    ['a.b', 'axb', false],
    ['(x)|y', '(x)|y', true],
    ['$x{1}', '$x{1}', true],
    ['é?', 'éß', true],
    ['*', 'deep/down/file', true],
    // parent directories
    ['a', 'a/b/c', true],
    ['a/b', 'a/b/c', true],
    ['b', 'a/b/c', false],
    ['.git', '.git/HEAD', true],
    ['.', 'a', false],
    // exceptions re-including files in excluded dirs
    ['a\n!a/keep', 'a/keep', false],
    ['a\n!a/keep', 'a/other', true],
    ['a\n!a/keep', 'a/keep/x', false],
    ['a\n!a/keep\na/keep/x', 'a/keep/x', true],
    ['*\n!src\nsrc/*.tmp', 'src/x.tmp', true],
    ['*\n!src\nsrc/*.tmp', 'src/x.ts', false],
    ['a\n! a/b', 'a/b', false],
  ];
  for (const [patterns, file, ignored] of cases) {
    test(`${JSON.stringify(patterns)} ${ignored ? 'ignores' : 'keeps'} ${file}`, () => {
      assert.equal(matcher(patterns).matches(file), ignored);
    });
  }
});

describe('IgnoreMatcher.canSkipDir', () => {
  const cases: Array<[patterns: string, dir: string, skip: boolean]> = [
    ['a', 'a', true],
    ['a', 'b', false],
    ['a', 'a/b', true],
    ['a\n!a/keep', 'a', false],
    ['a\n!a/keep', 'a/other', true],
    ['a\n!a/keep', 'a/keep', false],
    ['a\n!b', 'a', true],
    ['a\n!**/keep', 'a', false],
    ['a\n!*/keep', 'a', false],
    ['a\n!c*/keep', 'a', true],
    ['*\n!a/b/c', 'a/b', false],
    ['*\n!a/b/c', 'a/x', true],
    ['*\n!a', 'a', false],
  ];
  for (const [patterns, dir, skip] of cases) {
    test(`${JSON.stringify(patterns)} canSkipDir(${dir}) = ${skip}`, () => {
      assert.equal(matcher(patterns).canSkipDir(dir), skip);
    });
  }
});

describe('bad patterns', () => {
  const cases: Array<[text: string, line: number, quoted: string]> = [
    ['[a', 1, '[a'],
    ['ok\n[', 2, '['],
    ['a\\', 1, 'a\\'],
    ['[]', 1, '[]'],
    ['x\n[a-]', 2, '[a-]'],
    ['!', 1, '!'],
    ['ok\n!/', 2, '!/'],
    ['# c\n\n  [z-', 3, '[z-'],
    ['a\\q', 1, 'a\\q'],
  ];
  for (const [text, line, quoted] of cases) {
    test(`${JSON.stringify(text)} fails at line ${line}`, () => {
      assert.throws(
        () => parseDockerignore(text, 'ctx/.dockerignore'),
        (e: unknown) => {
          assert.ok(e instanceof KilnError);
          assert.equal(e.code, 'BAD_DOCKERIGNORE');
          assert.equal(e.category, 'context');
          assert.deepEqual(e.position, { file: 'ctx/.dockerignore', line });
          assert.ok(e.message.includes(`ctx/.dockerignore:${line}`), e.message);
          assert.ok(e.message.includes(JSON.stringify(quoted)), e.message);
          assert.ok(e.hint && e.hint.length > 0);
          return true;
        },
      );
    });
  }

  test('valid tricky patterns parse', () => {
    assert.equal(parseDockerignore('[\\]]\n\\[\n[*]\n**\n[a-z]*', 'f').length, 5);
  });
});

describe('cleanPath (Go filepath.Clean)', () => {
  const cases: Array<[string, string]> = [
    ['', '.'],
    ['a/./b/', 'a/b'],
    ['../../a/..', '../..'],
    ['/../a', '/a'],
  ];
  for (const [input, want] of cases) {
    test(`clean(${JSON.stringify(input)}) = ${want}`, () => assert.equal(cleanPath(input), want));
  }
});

describe('on a real directory', () => {
  const mk = async (): Promise<string> => mkdtemp(path.join(tmpdir(), 'kiln-ignore-'));

  test('<Dockerfile>.dockerignore overrides <context>/.dockerignore', async () => {
    const dir = await mk();
    try {
      await mkdir(path.join(dir, 'build'));
      await writeFile(path.join(dir, '.dockerignore'), 'from-context\n');
      await writeFile(path.join(dir, 'build', 'app.Dockerfile'), 'FROM scratch\n');
      await writeFile(
        path.join(dir, 'build', 'app.Dockerfile.dockerignore'),
        '# mine\nfrom-dockerfile\n!keep\n',
      );
      const got = await loadIgnoreFile(dir, path.join(dir, 'build', 'app.Dockerfile'));
      assert.equal(got.file, path.join(dir, 'build', 'app.Dockerfile.dockerignore'));
      assert.deepEqual(
        got.patterns.map((p) => [p.pattern, p.exclusion, p.line]),
        [
          ['from-dockerfile', false, 2],
          ['keep', true, 3],
        ],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('falls back to <context>/.dockerignore, then to nothing', async () => {
    const dir = await mk();
    try {
      await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\n');
      assert.deepEqual(await loadIgnoreFile(dir, path.join(dir, 'Dockerfile')), { file: null, patterns: [] });
      await writeFile(path.join(dir, '.dockerignore'), 'node_modules\n');
      const got = await loadIgnoreFile(dir, path.join(dir, 'Dockerfile'));
      assert.equal(got.file, path.join(dir, '.dockerignore'));
      assert.deepEqual(
        got.patterns.map((p) => p.pattern),
        ['node_modules'],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a bad pattern in the file reports that file and line', async () => {
    const dir = await mk();
    try {
      await writeFile(path.join(dir, '.dockerignore'), 'ok\n\n[oops\n');
      await assert.rejects(loadIgnoreFile(dir, path.join(dir, 'Dockerfile')), (e: unknown) => {
        assert.ok(e instanceof KilnError);
        assert.deepEqual(e.position, { file: path.join(dir, '.dockerignore'), line: 3 });
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('listContextFiles walks without following symlinks and honours exceptions', async () => {
    const dir = await mk();
    const outside = await mk();
    try {
      const files = [
        'Dockerfile',
        'src/main.ts',
        'src/main.test.ts',
        'src/lib/util.ts',
        'node_modules/pkg/index.js',
        'docs/a.md',
        'README.md',
        'notes.md',
        'logs/keep/important.log',
        'logs/other.log',
      ];
      for (const f of files) {
        await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
        await writeFile(path.join(dir, f), f);
      }
      await writeFile(path.join(outside, 'secret'), 'x');
      await symlink(outside, path.join(dir, 'link'));
      await writeFile(
        path.join(dir, '.dockerignore'),
        ['node_modules', '*.md', '!README.md', '**/*.test.ts', 'logs', '!logs/keep', '.dockerignore'].join(
          '\n',
        ),
      );
      const { patterns } = await loadIgnoreFile(dir, path.join(dir, 'Dockerfile'));
      const m = new IgnoreMatcher(patterns);
      assert.equal(m.canSkipDir('node_modules'), true);
      assert.equal(m.canSkipDir('logs'), false);
      const got = await listContextFiles(dir, m);
      assert.deepEqual(got, [
        'Dockerfile',
        'README.md',
        'docs',
        'docs/a.md',
        'link',
        'logs/keep',
        'logs/keep/important.log',
        'src',
        'src/lib',
        'src/lib/util.ts',
        'src/main.ts',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(outside, { recursive: true, force: true });
    }
  });

  test('listContextFiles with no patterns lists everything, sorted bytewise', async () => {
    const dir = await mk();
    try {
      for (const f of ['b', 'a/Z', 'a/a', 'B']) {
        await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
        await writeFile(path.join(dir, f), '');
      }
      assert.deepEqual(await listContextFiles(dir, new IgnoreMatcher([])), ['B', 'a', 'a/Z', 'a/a', 'b']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
