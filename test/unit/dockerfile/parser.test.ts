/**
 * Dockerfile front end against the Dockerfile reference: parser directives, escape token, comments,
 * continuations, heredocs, every instruction with its flags and argument forms, RUN --mount syntax,
 * and errors (code, category 'dockerfile', line).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../../src/dockerfile/parser.ts';
import { parseInstruction, type Instruction } from '../../../src/dockerfile/instructions.ts';
import { parseRunMount, type RunMountRequest } from '../../../src/dockerfile/mounts.ts';
import type { DockerfileAst } from '../../../src/dockerfile/ast.ts';
import { KilnError } from '../../../src/util/errors.ts';

const FILE = 'Dockerfile';

interface Warn {
  line: number;
  code: string;
}

function typed(text: string): { ast: DockerfileAst; ins: Instruction[]; warns: Warn[] } {
  const ast = parseDockerfile(text, FILE);
  const warns: Warn[] = [];
  const ins = ast.instructions.map((r) =>
    parseInstruction(r, {
      escape: ast.directives.escape,
      file: FILE,
      warn: (at, code) => void warns.push({ line: at.line, code }),
    }),
  );
  return { ast, ins, warns };
}

/** Asserts each key of `want` deep-equals the same key of `got`. */
function assertPartial(got: unknown, want: Record<string, unknown>): void {
  const g = got as Record<string, unknown>;
  for (const [k, v] of Object.entries(want)) assert.deepEqual(g[k], v, `field ${k}`);
}

function expectKilnError(fn: () => unknown, code: string, line: number, msg?: RegExp | string): KilnError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KilnError, `expected a KilnError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.category, 'dockerfile');
  assert.ok(caught.position, 'error has a position');
  assert.equal(caught.position.file, FILE);
  assert.equal(caught.position.line, line, `line of ${caught.message}`);
  assert.ok(!caught.message.includes('\n'), 'message is one line');
  if (msg !== undefined) {
    if (typeof msg === 'string') assert.ok(caught.message.includes(msg), caught.message);
    else assert.match(caught.message, msg);
  }
  return caught;
}

describe('parser directives', () => {
  const cases: Array<{ name: string; src: string; check: (ast: DockerfileAst) => void }> = [
    {
      name: 'syntax directive',
      src: '# syntax=docker/dockerfile:1\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.syntax, 'docker/dockerfile:1'),
    },
    {
      name: 'whitespace around = and after #',
      src: '#   syntax   =   docker/dockerfile:1.7   \nFROM alpine\n',
      check: (a) => assert.equal(a.directives.syntax, 'docker/dockerfile:1.7'),
    },
    {
      name: 'no space after #',
      src: '#syntax=docker/dockerfile:1\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.syntax, 'docker/dockerfile:1'),
    },
    {
      name: 'directive names are case-insensitive',
      src: '# SYNTAX=docker/dockerfile:1\n# Escape=`\nFROM alpine\n',
      check: (a) => {
        assert.equal(a.directives.syntax, 'docker/dockerfile:1');
        assert.equal(a.directives.escape, '`');
      },
    },
    {
      name: 'escape=` sets the backtick token',
      src: '# escape=`\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.escape, '`'),
    },
    {
      name: 'escape=\\ keeps the default',
      src: '# escape=\\\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.escape, '\\'),
    },
    {
      name: 'default escape is backslash',
      src: 'FROM alpine\n',
      check: (a) => {
        assert.equal(a.directives.escape, '\\');
        assert.equal(a.directives.syntax, undefined);
      },
    },
    {
      name: 'check directive',
      src: '# check=skip=JSONArgsRecommended;error=true\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.check, 'skip=JSONArgsRecommended;error=true'),
    },
    {
      name: 'several directives together',
      src: '# syntax=docker/dockerfile:1\n# escape=`\n# check=error=true\nFROM alpine\n',
      check: (a) => {
        assert.equal(a.directives.syntax, 'docker/dockerfile:1');
        assert.equal(a.directives.escape, '`');
        assert.equal(a.directives.check, 'error=true');
        assert.equal(a.instructions.length, 1);
        assert.equal(a.instructions[0]!.line, 4);
      },
    },
    {
      name: 'directive after an instruction is a comment',
      src: 'FROM alpine\n# escape=`\nRUN echo \\\n  hi\n',
      check: (a) => {
        assert.equal(a.directives.escape, '\\');
        assert.equal(a.instructions.length, 2);
      },
    },
    {
      name: 'directive after a plain comment is a comment',
      src: '# hello\n# escape=`\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.escape, '\\'),
    },
    {
      name: 'directive after an empty line is a comment',
      src: '\n# escape=`\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.escape, '\\'),
    },
    {
      name: 'unknown directive is ignored',
      src: '# unknowndirective=value\nFROM alpine\n',
      check: (a) => {
        assert.equal(a.directives.escape, '\\');
        assert.equal(a.instructions.length, 1);
      },
    },
    {
      name: 'known directive after an unknown one is a comment (reference example)',
      src: '# unknowndirective=value\n# escape=`\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.escape, '\\'),
    },
    {
      name: 'a second directive after the block ended is no duplicate',
      src: '# escape=\\\nFROM alpine\n# escape=\\\n',
      check: (a) => assert.equal(a.instructions.length, 1),
    },
    {
      name: 'a byte-order mark is ignored',
      src: '\uFEFF# escape=`\nFROM alpine\n',
      check: (a) => assert.equal(a.directives.escape, '`'),
    },
  ];
  for (const c of cases) test(c.name, () => c.check(parseDockerfile(c.src, FILE)));
});

describe('lexing: escape, comments, continuations, heredocs', () => {
  const cases: Array<{
    name: string;
    src: string;
    check: (r: ReturnType<typeof typed>) => void;
  }> = [
    {
      name: 'backtick escape keeps Windows paths (reference example)',
      src: '# escape=`\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n',
      check: ({ ins }) => {
        assert.equal(ins.length, 3);
        assertPartial(ins[1], { kind: 'copy', sources: ['testfile.txt'], dest: 'c:\\' });
        assertPartial(ins[2], { kind: 'run', command: { form: 'shell', script: 'dir c:\\' } });
      },
    },
    {
      name: 'without escape=` a trailing backslash joins the lines (reference pitfall)',
      src: 'FROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n',
      check: ({ ins }) => {
        assert.equal(ins.length, 2);
        assertPartial(ins[1], { kind: 'copy', sources: ['testfile.txt', 'c:RUN', 'dir'], dest: 'c:' });
      },
    },
    {
      name: 'backtick continuation',
      src: '# escape=`\nFROM a\nRUN echo `\n  hi\n',
      check: ({ ins }) => assertPartial(ins[1], { command: { form: 'shell', script: 'echo   hi' } }),
    },
    {
      name: 'backslash continuation joins without trimming the next line',
      src: 'FROM a\nRUN apt-get update && \\\n    apt-get install -y curl\n',
      check: ({ ins, ast }) => {
        assertPartial(ins[1], {
          command: { form: 'shell', script: 'apt-get update &&     apt-get install -y curl' },
        });
        assert.equal(ast.instructions[1]!.line, 2);
        assert.equal(ast.instructions[1]!.endLine, 3);
      },
    },
    {
      name: 'white space after the escape token still continues',
      src: 'FROM a\nRUN echo a \\  \t\n b\n',
      check: ({ ins }) => assertPartial(ins[1], { command: { form: 'shell', script: 'echo a  b' } }),
    },
    {
      name: 'comment lines above an instruction are attached',
      src: '# base image\n# pinned\nFROM alpine\n',
      check: ({ ast }) => assert.deepEqual(ast.instructions[0]!.comments, ['base image', 'pinned']),
    },
    {
      name: 'comment lines inside a continuation are dropped',
      src: 'FROM a\nRUN echo one \\\n# a comment\n    two\n',
      check: ({ ins, ast }) => {
        assertPartial(ins[1], { command: { form: 'shell', script: 'echo one     two' } });
        assert.equal(ast.instructions[1]!.endLine, 4);
      },
    },
    {
      name: 'indented comment lines inside a continuation are dropped',
      src: 'FROM a\nRUN apt-get install \\\n    # tools\n    curl \\\n    git\n',
      check: ({ ins }) =>
        assertPartial(ins[1], { command: { form: 'shell', script: 'apt-get install     curl     git' } }),
    },
    {
      name: '# in the middle of a line is not a comment',
      src: 'FROM a\nRUN echo hello # world\n',
      check: ({ ins }) => assertPartial(ins[1], { command: { form: 'shell', script: 'echo hello # world' } }),
    },
    {
      name: 'indented comment line',
      src: 'FROM a\n    # indented\nRUN x\n',
      check: ({ ast }) => {
        assert.equal(ast.instructions.length, 2);
        assert.deepEqual(ast.instructions[1]!.comments, ['indented']);
      },
    },
    {
      name: 'empty continuation line warns and is skipped',
      src: 'FROM a\nRUN echo a \\\n\n  b\n',
      check: ({ ins, ast }) => {
        assertPartial(ins[1], { command: { form: 'shell', script: 'echo a   b' } });
        assert.deepEqual(
          ast.warnings.map((w) => [w.line, w.code]),
          [[2, 'NoEmptyContinuation']],
        );
      },
    },
    {
      name: 'white-space-only continuation line warns',
      src: 'FROM a\nRUN echo a \\\n   \t\n  b\n',
      check: ({ ast }) => assert.equal(ast.warnings[0]?.code, 'NoEmptyContinuation'),
    },
    {
      name: 'no warning without empty continuation lines',
      src: 'FROM a\n\nRUN echo a \\\n  b\n\n',
      check: ({ ast }) => assert.deepEqual(ast.warnings, []),
    },
    {
      name: 'continuation at end of file',
      src: 'FROM a\nRUN echo a \\',
      check: ({ ins }) => assertPartial(ins[1], { command: { form: 'shell', script: 'echo a' } }),
    },
    {
      name: 'CRLF line endings',
      src: 'FROM alpine\r\nRUN echo a \\\r\n  b\r\nUSER app\r\n',
      check: ({ ins }) => {
        assert.equal(ins.length, 3);
        assertPartial(ins[1], { command: { form: 'shell', script: 'echo a   b' } });
        assertPartial(ins[2], { kind: 'user', value: 'app' });
      },
    },
    {
      name: 'line numbers count blank and comment lines',
      src: '\n# c\n\nFROM a\n\n\nRUN x\n',
      check: ({ ast }) =>
        assert.deepEqual(
          ast.instructions.map((i) => i.line),
          [4, 7],
        ),
    },
    {
      name: 'instruction names are case-insensitive',
      src: 'from alpine\nrUn echo hi\nCopy a b\nworkDIR /x\n',
      check: ({ ins }) =>
        assert.deepEqual(
          ins.map((i) => i.kind),
          ['from', 'run', 'copy', 'workdir'],
        ),
    },
    {
      name: 'heredoc <<EOF',
      src: 'FROM a\nRUN <<EOF\napt-get update\napt-get install -y vim\nEOF\nUSER x\n',
      check: ({ ins, ast }) => {
        const r = ins[1]!;
        assert.equal(r.kind, 'run');
        if (r.kind !== 'run') return;
        assert.deepEqual(r.heredocs, [
          {
            name: 'EOF',
            content: 'apt-get update\napt-get install -y vim\n',
            expand: true,
            chomp: false,
            fileDescriptor: 0,
          },
        ]);
        assert.equal(ast.instructions[1]!.endLine, 5);
        assertPartial(ins[2], { kind: 'user', value: 'x', at: { file: FILE, line: 6 } });
      },
    },
    {
      name: 'heredoc <<-EOF strips leading tabs from body and terminator',
      src: 'FROM a\nRUN <<-EOF\n\techo hi\n\t\techo there\n\tEOF\n',
      check: ({ ast }) => {
        const h = ast.instructions[1]!.heredocs[0]!;
        assert.equal(h.chomp, true);
        assert.equal(h.content, 'echo hi\necho there\n');
      },
    },
    {
      name: 'heredoc <<EOF keeps leading tabs',
      src: 'FROM a\nRUN <<EOF\n\techo hi\nEOF\n',
      check: ({ ast }) => assert.equal(ast.instructions[1]!.heredocs[0]!.content, '\techo hi\n'),
    },
    {
      name: 'heredoc with double-quoted delimiter is not expanded',
      src: 'FROM a\nRUN <<"EOF"\necho $HOME\nEOF\n',
      check: ({ ast }) => assertPartial(ast.instructions[1]!.heredocs[0], { name: 'EOF', expand: false }),
    },
    {
      name: 'heredoc with single-quoted delimiter is not expanded',
      src: "FROM a\nRUN <<'EOF'\necho $HOME\nEOF\n",
      check: ({ ast }) =>
        assertPartial(ast.instructions[1]!.heredocs[0], {
          name: 'EOF',
          expand: false,
          content: 'echo $HOME\n',
        }),
    },
    {
      name: 'heredoc with a program after the marker',
      src: 'FROM a\nRUN python3 <<EOF\nprint("hi")\nEOF\n',
      check: ({ ins }) => {
        assertPartial(ins[1], { command: { form: 'shell', script: 'python3 <<EOF' } });
        assertPartial((ins[1] as { heredocs: unknown[] }).heredocs[0], { content: 'print("hi")\n' });
      },
    },
    {
      name: 'several heredocs in one RUN are read in order',
      src: 'FROM a\nRUN cat <<FILE1 > /f1 && cat <<FILE2 > /f2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\nUSER u\n',
      check: ({ ast }) => {
        const hs = ast.instructions[1]!.heredocs;
        assert.deepEqual(
          hs.map((h) => [h.name, h.content]),
          [
            ['FILE1', 'I am\nfirst\n'],
            ['FILE2', 'I am\nsecond\n'],
          ],
        );
        assert.equal(ast.instructions[2]!.line, 9);
      },
    },
    {
      name: 'heredoc with a file descriptor',
      src: 'FROM a\nRUN 3<<EOF cat /dev/fd/3\nx\nEOF\n',
      check: ({ ast }) => assert.equal(ast.instructions[1]!.heredocs[0]!.fileDescriptor, 3),
    },
    {
      name: 'COPY <<EOF /dest',
      src: 'FROM a\nCOPY <<EOF /etc/app.conf\nkey=value\nEOF\n',
      check: ({ ins }) => {
        assertPartial(ins[1], { kind: 'copy', sources: ['<<EOF'], dest: '/etc/app.conf' });
        assertPartial((ins[1] as { heredocs: unknown[] }).heredocs[0], {
          name: 'EOF',
          content: 'key=value\n',
        });
      },
    },
    {
      name: 'COPY two heredocs to a directory',
      src: 'FROM a\nCOPY <<one.txt <<two.txt /dest/\n1\none.txt\n2\ntwo.txt\n',
      check: ({ ins }) => assertPartial(ins[1], { sources: ['<<one.txt', '<<two.txt'], dest: '/dest/' }),
    },
    {
      name: 'ADD <<EOF is a heredoc too',
      src: 'FROM a\nADD <<EOF /x\nbody\nEOF\n',
      check: ({ ins }) => assertPartial(ins[1], { kind: 'add', sources: ['<<EOF'], dest: '/x' }),
    },
    {
      name: 'quoted "<<EOF" is not a heredoc',
      src: 'FROM a\nRUN echo "<<EOF"\nUSER x\n',
      check: ({ ast }) => {
        assert.equal(ast.instructions[1]!.heredocs.length, 0);
        assert.equal(ast.instructions.length, 3);
      },
    },
    {
      name: 'heredocs only apply to RUN, COPY and ADD',
      src: 'FROM a\nLABEL x=<<EOF\nUSER u\n',
      check: ({ ast }) => {
        assert.equal(ast.instructions.length, 3);
        assert.equal(ast.instructions[1]!.heredocs.length, 0);
      },
    },
    {
      name: 'ONBUILD RUN <<EOF reads the heredoc (compound instruction)',
      src: 'FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nUSER u\n',
      check: ({ ins }) => {
        assert.equal(ins.length, 3);
        const o = ins[1]!;
        assert.equal(o.kind, 'onbuild');
        if (o.kind !== 'onbuild') return;
        assertPartial(o.inner, { kind: 'run' });
        assertPartial((o.inner as { heredocs: unknown[] }).heredocs[0], {
          name: 'EOF',
          content: 'echo hi\n',
        });
      },
    },
    {
      name: 'a comment ending in a backslash does not continue',
      src: 'FROM a\n# note \\\nRUN x\n',
      check: ({ ins }) => {
        assert.equal(ins.length, 2);
        assertPartial(ins[1], { command: { form: 'shell', script: 'x' } });
      },
    },
    {
      name: 'heredoc body lines that look like instructions or comments stay in the body',
      src: 'FROM a\nRUN <<EOF\n# not a comment\nFROM b\nEOF\n',
      check: ({ ast }) => {
        assert.equal(ast.instructions.length, 2);
        assert.equal(ast.instructions[1]!.heredocs[0]!.content, '# not a comment\nFROM b\n');
      },
    },
  ];
  for (const c of cases) test(c.name, () => c.check(typed(c.src)));
});

describe('instructions', () => {
  const cases: Array<{ name: string; src: string; want: Record<string, unknown>; warn?: string }> = [
    { name: 'FROM image', src: 'FROM alpine:3.19', want: { kind: 'from', image: 'alpine:3.19' } },
    {
      name: 'FROM --platform AS name (name lower-cased)',
      src: 'FROM --platform=linux/arm64 golang:1.22 AS Build',
      want: { image: 'golang:1.22', platform: 'linux/arm64', stageName: 'build' },
    },
    {
      name: 'FROM lower-case as',
      src: 'FROM alpine as base',
      want: { image: 'alpine', stageName: 'base' },
    },
    {
      name: 'FROM --platform is kept unexpanded',
      src: 'FROM --platform=$BUILDPLATFORM golang AS b',
      want: { platform: '$BUILDPLATFORM' },
    },
    {
      name: 'FROM digest reference',
      src: 'FROM alpine@sha256:' + 'a'.repeat(64),
      want: { image: 'alpine@sha256:' + 'a'.repeat(64) },
    },
    {
      name: 'RUN shell form',
      src: 'RUN echo hi && ls -l',
      want: { kind: 'run', command: { form: 'shell', script: 'echo hi && ls -l' }, mounts: [] },
    },
    {
      name: 'RUN exec form',
      src: 'RUN ["/bin/bash", "-c", "echo hello"]',
      want: { command: { form: 'exec', argv: ['/bin/bash', '-c', 'echo hello'] } },
    },
    {
      name: 'RUN invalid JSON falls back to shell form with a warning',
      src: 'RUN [echo, hi]',
      want: { command: { form: 'shell', script: '[echo, hi]' } },
      warn: 'InvalidJSON',
    },
    {
      name: 'RUN JSON with single quotes is shell form',
      src: "RUN ['echo', 'hi']",
      want: { command: { form: 'shell', script: "['echo', 'hi']" } },
      warn: 'InvalidJSON',
    },
    {
      name: 'RUN --mount (several) are collected raw',
      src: 'RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok make',
      want: {
        mounts: ['type=cache,target=/root/.cache', 'type=secret,id=tok'],
        command: { form: 'shell', script: 'make' },
      },
    },
    {
      name: 'RUN --mount with quoted value has the quotes removed',
      src: 'RUN --mount="type=bind,target=/src" ls',
      want: { mounts: ['type=bind,target=/src'] },
    },
    {
      name: 'RUN --network=none',
      src: 'RUN --network=none pip install .',
      want: { network: 'none', command: { form: 'shell', script: 'pip install .' } },
    },
    { name: 'RUN --network=host', src: 'RUN --network=host x', want: { network: 'host' } },
    { name: 'RUN --security=insecure', src: 'RUN --security=insecure x', want: { security: 'insecure' } },
    {
      name: 'RUN -- ends the flags',
      src: 'RUN -- --version',
      want: { command: { form: 'shell', script: '--version' } },
    },
    {
      name: 'CMD exec form',
      src: 'CMD ["nginx", "-g", "daemon off;"]',
      want: { kind: 'cmd', command: { form: 'exec', argv: ['nginx', '-g', 'daemon off;'] } },
    },
    {
      name: 'CMD shell form',
      src: 'CMD echo $HOME',
      want: { kind: 'cmd', command: { form: 'shell', script: 'echo $HOME' } },
    },
    { name: 'CMD empty JSON array', src: 'CMD []', want: { command: { form: 'exec', argv: [] } } },
    {
      name: 'ENTRYPOINT exec form',
      src: 'ENTRYPOINT ["/entry.sh"]',
      want: { kind: 'entrypoint', command: { form: 'exec', argv: ['/entry.sh'] } },
    },
    {
      name: 'ENTRYPOINT shell form',
      src: 'ENTRYPOINT exec top -b',
      want: { kind: 'entrypoint', command: { form: 'shell', script: 'exec top -b' } },
    },
    {
      name: 'ENTRYPOINT broken JSON warns',
      src: 'ENTRYPOINT ["a", "b"',
      want: { command: { form: 'shell', script: '["a", "b"' } },
      warn: 'InvalidJSON',
    },
    {
      name: 'LABEL several pairs with quotes (raw, unexpanded)',
      src: 'LABEL "com.example.vendor"="ACME Inc" version=1.0 description="multi word"',
      want: {
        kind: 'label',
        pairs: [
          ['"com.example.vendor"', '"ACME Inc"'],
          ['version', '1.0'],
          ['description', '"multi word"'],
        ],
      },
    },
    {
      name: 'LABEL value with escaped space',
      src: 'LABEL other=value\\ 2',
      want: { pairs: [['other', 'value\\ 2']] },
    },
    {
      name: 'ENV key=value form with several pairs',
      src: 'ENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog MY_CAT=fluffy',
      want: {
        kind: 'env',
        pairs: [
          ['MY_NAME', '"John Doe"'],
          ['MY_DOG', 'Rex\\ The\\ Dog'],
          ['MY_CAT', 'fluffy'],
        ],
      },
    },
    {
      name: 'ENV legacy form: the rest of the line is the value',
      src: 'ENV MY_VAR my-value with spaces',
      want: { pairs: [['MY_VAR', 'my-value with spaces']] },
    },
    {
      name: 'ENV legacy form splits on any white space BuildKit knows (carriage return)',
      src: 'ENV LEGAC\rY value with spaces',
      want: { pairs: [['LEGAC', 'Y value with spaces']] },
    },
    { name: 'ENV empty value', src: 'ENV EMPTY=', want: { pairs: [['EMPTY', '']] } },
    {
      name: 'EXPOSE ports, protocols and ranges',
      src: 'EXPOSE 80 443/tcp 53/udp 8000-8010',
      want: { kind: 'expose', values: ['80', '443/tcp', '53/udp', '8000-8010'] },
    },
    {
      name: 'COPY with every flag, --exclude twice',
      src: 'COPY --from=build --chown=1000:1000 --chmod=0755 --link --parents --exclude=*.md --exclude=tmp/ a b /dst/',
      want: {
        kind: 'copy',
        from: 'build',
        chown: '1000:1000',
        chmod: '0755',
        link: true,
        parents: true,
        exclude: ['*.md', 'tmp/'],
        sources: ['a', 'b'],
        dest: '/dst/',
        json: false,
      },
    },
    {
      name: 'COPY defaults',
      src: 'COPY . /app',
      want: { sources: ['.'], dest: '/app', link: false, parents: false, exclude: [], keepGitDir: false },
    },
    { name: 'COPY --link=false', src: 'COPY --link=false a /b', want: { link: false } },
    { name: 'COPY --link=TRUE', src: 'COPY --link=TRUE a /b', want: { link: true } },
    { name: 'COPY --from=0 (index)', src: 'COPY --from=0 /out /out', want: { from: '0' } },
    {
      name: 'COPY --from=image',
      src: 'COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf',
      want: { from: 'nginx:latest' },
    },
    {
      name: 'COPY JSON form with spaces in paths',
      src: 'COPY ["my file.txt", "other", "/dest dir/"]',
      want: { sources: ['my file.txt', 'other'], dest: '/dest dir/', json: true },
    },
    {
      name: 'COPY broken JSON falls back to whitespace split',
      src: 'COPY [a, /b]',
      want: { sources: ['[a,'], dest: '/b]', json: false },
    },
    {
      name: 'ADD --checksum and URL',
      src: 'ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /',
      want: {
        kind: 'add',
        checksum: 'sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d',
        sources: ['https://example.com/a.tar.gz'],
        dest: '/',
      },
    },
    {
      name: 'ADD --keep-git-dir',
      src: 'ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit',
      want: { keepGitDir: true, sources: ['https://github.com/moby/buildkit.git#v0.10.1'] },
    },
    {
      name: 'ADD --chown --chmod --link --exclude --unpack',
      src: 'ADD --chown=app --chmod=644 --link --exclude=*.txt --unpack=false a.tar /x/',
      want: { chown: 'app', chmod: '644', link: true, exclude: ['*.txt'], unpack: false },
    },
    {
      name: 'VOLUME JSON form',
      src: 'VOLUME ["/data", "/var/log"]',
      want: { kind: 'volume', values: ['/data', '/var/log'] },
    },
    { name: 'VOLUME plain form', src: 'VOLUME /data /var/log', want: { values: ['/data', '/var/log'] } },
    { name: 'USER name:group', src: 'USER patrick:staff', want: { kind: 'user', value: 'patrick:staff' } },
    { name: 'USER uid', src: 'USER 1000', want: { value: '1000' } },
    {
      name: 'WORKDIR',
      src: 'WORKDIR /path/to/workdir',
      want: { kind: 'workdir', value: '/path/to/workdir' },
    },
    {
      name: 'WORKDIR with a variable',
      src: 'WORKDIR $DIRPATH/$DIRNAME',
      want: { value: '$DIRPATH/$DIRNAME' },
    },
    {
      name: 'ARG several with defaults',
      src: 'ARG user1=someuser buildno=1 plain msg="hello world"',
      want: {
        kind: 'arg',
        args: [
          { name: 'user1', default: 'someuser' },
          { name: 'buildno', default: '1' },
          { name: 'plain' },
          { name: 'msg', default: '"hello world"' },
        ],
      },
    },
    { name: 'ARG empty default', src: 'ARG x=', want: { args: [{ name: 'x', default: '' }] } },
    {
      name: 'ONBUILD RUN',
      src: 'ONBUILD RUN /usr/local/bin/python-build --dir /app/src',
      want: { kind: 'onbuild', trigger: 'RUN /usr/local/bin/python-build --dir /app/src' },
    },
    {
      name: 'ONBUILD ADD keeps the trigger text',
      src: 'onbuild ADD . /app/src',
      want: { kind: 'onbuild', trigger: 'ADD . /app/src' },
    },
    { name: 'STOPSIGNAL name', src: 'STOPSIGNAL SIGKILL', want: { kind: 'stopsignal', value: 'SIGKILL' } },
    { name: 'STOPSIGNAL number', src: 'STOPSIGNAL 9', want: { value: '9' } },
    {
      name: 'HEALTHCHECK with every option',
      src: 'HEALTHCHECK --interval=5m --timeout=3s --start-period=30s --start-interval=5s --retries=3 CMD curl -f http://localhost/ || exit 1',
      want: {
        kind: 'healthcheck',
        none: false,
        interval: '5m',
        timeout: '3s',
        startPeriod: '30s',
        startInterval: '5s',
        retries: 3,
        test: { form: 'shell', script: 'curl -f http://localhost/ || exit 1' },
      },
    },
    {
      name: 'HEALTHCHECK CMD exec form',
      src: 'HEALTHCHECK CMD ["curl", "-f", "http://localhost/"]',
      want: { test: { form: 'exec', argv: ['curl', '-f', 'http://localhost/'] } },
    },
    { name: 'HEALTHCHECK NONE', src: 'HEALTHCHECK NONE', want: { kind: 'healthcheck', none: true } },
    { name: 'HEALTHCHECK none (case-insensitive type)', src: 'healthcheck none', want: { none: true } },
    {
      name: 'HEALTHCHECK Go durations with several units and 0',
      src: 'HEALTHCHECK --interval=1m30s --timeout=1.5s --start-period=0 --start-interval=500ms CMD true',
      want: { interval: '1m30s', timeout: '1.5s', startPeriod: '0', startInterval: '500ms' },
    },
    { name: 'HEALTHCHECK --retries=0', src: 'HEALTHCHECK --retries=0 CMD true', want: { retries: 0 } },
    {
      name: 'SHELL JSON form',
      src: 'SHELL ["powershell", "-command"]',
      want: { kind: 'shell', argv: ['powershell', '-command'] },
    },
    {
      name: 'MAINTAINER keeps the whole line',
      src: 'MAINTAINER Jane Doe <jane@example.com>',
      want: { kind: 'maintainer', value: 'Jane Doe <jane@example.com>' },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { ins, warns } = typed(c.src + '\n');
      assert.equal(ins.length, 1);
      assertPartial(ins[0], { at: { file: FILE, line: 1 }, ...c.want });
      if (c.warn) assert.deepEqual(warns, [{ line: 1, code: c.warn }]);
      else assert.deepEqual(warns, []);
    });
  }

  test('ONBUILD COPY --from parses the inner instruction with its flags', () => {
    const { ins } = typed('ONBUILD COPY --from=builder /a /b\n');
    const o = ins[0]!;
    assert.equal(o.kind, 'onbuild');
    if (o.kind !== 'onbuild') return;
    assertPartial(o.inner, { kind: 'copy', from: 'builder', sources: ['/a'], dest: '/b' });
  });
});

describe('errors: code, category dockerfile, line', () => {
  const cases: Array<{ name: string; src: string; code: string; line: number; msg?: string | RegExp }> = [
    {
      name: 'duplicate directive',
      src: '# escape=\\\n# escape=`\nFROM a',
      code: 'DUPLICATE_DIRECTIVE',
      line: 2,
    },
    {
      name: 'duplicate directive in another case',
      src: '# syntax=a\n# SYNTAX=b\nFROM a',
      code: 'DUPLICATE_DIRECTIVE',
      line: 2,
    },
    { name: 'bad escape value', src: '# escape=x\nFROM a', code: 'BAD_ESCAPE', line: 1 },
    {
      name: 'bad escape value on line 2',
      src: '# syntax=x\n# escape=\\\\\nFROM a',
      code: 'BAD_ESCAPE',
      line: 2,
    },
    {
      name: 'unknown instruction RUNN suggests RUN',
      src: 'FROM a\nRUNN echo hi',
      code: 'UNKNOWN_INSTRUCTION',
      line: 2,
      msg: 'did you mean RUN',
    },
    {
      name: 'unknown instruction after blank lines and comments',
      src: 'FROM a\n\n# c\nCOPPY a b',
      code: 'UNKNOWN_INSTRUCTION',
      line: 4,
      msg: 'did you mean COPY',
    },
    {
      name: 'unknown instruction with no close match',
      src: 'FROM a\nFROBNICATE x',
      code: 'UNKNOWN_INSTRUCTION',
      line: 2,
    },
    { name: 'unknown flag', src: 'FROM a\nCOPY --form=x a b', code: 'UNKNOWN_FLAG', line: 2, msg: '--form' },
    {
      name: 'COPY --checksum is ADD-only',
      src: 'COPY --checksum=sha256:x a b',
      code: 'UNKNOWN_FLAG',
      line: 1,
    },
    {
      name: 'COPY --keep-git-dir is ADD-only',
      src: 'COPY --keep-git-dir a b',
      code: 'UNKNOWN_FLAG',
      line: 1,
    },
    { name: 'ADD --from is COPY-only', src: 'ADD --from=x a b', code: 'UNKNOWN_FLAG', line: 1 },
    { name: 'flag on USER', src: 'USER --foo bar', code: 'UNKNOWN_FLAG', line: 1 },
    { name: 'RUN --network bad value', src: 'RUN --network=bridge x', code: 'BAD_FLAG', line: 1 },
    { name: 'RUN --security bad value', src: 'RUN --security=root x', code: 'BAD_FLAG', line: 1 },
    { name: 'bool flag bad value', src: 'COPY --link=maybe a b', code: 'BAD_FLAG', line: 1 },
    { name: 'string flag without value', src: 'COPY --chown a b', code: 'BAD_FLAG', line: 1 },
    { name: 'COPY --from= empty', src: 'COPY --from= a b', code: 'BAD_FLAG', line: 1 },
    { name: 'string flag twice', src: 'COPY --from=a --from=b x y', code: 'DUPLICATE_FLAG', line: 1 },
    { name: 'FROM with two words', src: 'FROM a b', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'FROM AS without name', src: 'FROM a AS', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'FROM without image', src: 'FROM', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'invalid stage name', src: 'FROM a AS 1stage', code: 'BAD_STAGE_NAME', line: 1 },
    { name: 'stage name with a slash', src: 'FROM a AS my/stage', code: 'BAD_STAGE_NAME', line: 1 },
    { name: 'RUN without a command', src: 'FROM a\nRUN', code: 'MISSING_ARGUMENT', line: 2 },
    { name: 'SHELL not JSON', src: 'SHELL /bin/sh -c', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'SHELL empty JSON array', src: 'SHELL []', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'ONBUILD ONBUILD', src: 'ONBUILD ONBUILD RUN x', code: 'BAD_ONBUILD', line: 1 },
    { name: 'ONBUILD FROM', src: 'ONBUILD FROM alpine', code: 'BAD_ONBUILD', line: 1 },
    { name: 'ONBUILD MAINTAINER', src: 'ONBUILD MAINTAINER me', code: 'BAD_ONBUILD', line: 1 },
    { name: 'ONBUILD without trigger', src: 'ONBUILD', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'ONBUILD unknown trigger', src: 'ONBUILD RUNN x', code: 'UNKNOWN_INSTRUCTION', line: 1 },
    {
      name: 'HEALTHCHECK --retries not a number',
      src: 'HEALTHCHECK --retries=x CMD a',
      code: 'BAD_FLAG',
      line: 1,
    },
    {
      name: 'HEALTHCHECK --retries negative',
      src: 'HEALTHCHECK --retries=-1 CMD a',
      code: 'BAD_FLAG',
      line: 1,
    },
    {
      name: 'HEALTHCHECK --interval not a duration',
      src: 'HEALTHCHECK --interval=soon CMD a',
      code: 'BAD_FLAG',
      line: 1,
    },
    {
      name: 'HEALTHCHECK --timeout without unit',
      src: 'HEALTHCHECK --timeout=30 CMD a',
      code: 'BAD_FLAG',
      line: 1,
    },
    {
      name: 'HEALTHCHECK --start-period under 1ms',
      src: 'HEALTHCHECK --start-period=1us CMD a',
      code: 'BAD_FLAG',
      line: 1,
    },
    {
      name: 'HEALTHCHECK unknown flag',
      src: 'HEALTHCHECK --intervall=5s CMD a',
      code: 'UNKNOWN_FLAG',
      line: 1,
    },
    { name: 'HEALTHCHECK CMD without command', src: 'HEALTHCHECK CMD', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'HEALTHCHECK unknown type', src: 'HEALTHCHECK RUN x', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'HEALTHCHECK NONE with arguments', src: 'HEALTHCHECK NONE x', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'HEALTHCHECK without argument', src: 'HEALTHCHECK', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'COPY one argument', src: 'COPY onlyone', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'COPY heredoc as destination', src: 'COPY a <<EOF\nx\nEOF', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'ENV without arguments', src: 'ENV', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'ENV legacy name without value', src: 'ENV ONLYNAME', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'ENV pair then bare word', src: 'ENV a=1 b', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'LABEL empty name', src: 'LABEL =x', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'ARG without name', src: 'ARG', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'ARG empty name', src: 'ARG =x', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'EXPOSE without ports', src: 'EXPOSE', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'VOLUME without path', src: 'VOLUME', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'VOLUME empty string', src: 'VOLUME ["/a", ""]', code: 'BAD_ARGUMENTS', line: 1 },
    { name: 'USER without name', src: 'USER', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'WORKDIR without path', src: 'WORKDIR', code: 'MISSING_ARGUMENT', line: 1 },
    { name: 'STOPSIGNAL without signal', src: 'STOPSIGNAL', code: 'MISSING_ARGUMENT', line: 1 },
    {
      name: 'unterminated heredoc reports the instruction line',
      src: 'FROM a\n\nRUN <<EOF\necho hi\n',
      code: 'UNTERMINATED_HEREDOC',
      line: 3,
      msg: 'EOF',
    },
    {
      name: '<<EOF is not closed by a tab-indented terminator',
      src: 'FROM a\nRUN <<EOF\necho\n\tEOF\n',
      code: 'UNTERMINATED_HEREDOC',
      line: 2,
    },
    {
      name: 'second heredoc unterminated',
      src: 'FROM a\nRUN cat <<A <<B\na\nA\nb\n',
      code: 'UNTERMINATED_HEREDOC',
      line: 2,
      msg: 'B',
    },
  ];
  for (const c of cases) test(c.name, () => void expectKilnError(() => typed(c.src), c.code, c.line, c.msg));

  test('unknown flag hint suggests the closest flag', () => {
    const e = expectKilnError(() => typed('COPY --form=x a b'), 'UNKNOWN_FLAG', 1);
    assert.match(e.hint ?? '', /--from/);
  });
});

describe('RUN --mount', () => {
  const at = { file: FILE, line: 7 };
  const cases: Array<{ name: string; spec: string; index?: number; want: RunMountRequest }> = [
    {
      name: 'cache defaults (id is the target)',
      spec: 'type=cache,target=/root/.cache',
      want: {
        type: 'cache',
        id: '/root/.cache',
        target: '/root/.cache',
        readonly: false,
        sharing: 'shared',
        mode: 0o755,
        uid: 0,
        gid: 0,
      },
    },
    {
      name: 'cache with every key',
      spec: 'type=cache,id=gomod,target=/go/pkg/mod,sharing=locked,mode=0700,uid=1000,gid=1001,ro,from=seed,source=/m',
      want: {
        type: 'cache',
        id: 'gomod',
        target: '/go/pkg/mod',
        readonly: true,
        sharing: 'locked',
        from: 'seed',
        source: '/m',
        mode: 0o700,
        uid: 1000,
        gid: 1001,
        explicitOwner: true,
      },
    },
    {
      name: 'cache sharing=private, dst alias',
      spec: 'type=cache,dst=/c,sharing=private',
      want: {
        type: 'cache',
        id: '/c',
        target: '/c',
        readonly: false,
        sharing: 'private',
        mode: 0o755,
        uid: 0,
        gid: 0,
      },
    },
    {
      name: 'bind is the default type, source defaults to /',
      spec: 'target=/src',
      want: { type: 'bind', target: '/src', source: '/', readwrite: false },
    },
    {
      name: 'bind with from, src/dst aliases and rw',
      spec: 'type=bind,from=builder,src=/out,dst=/in,rw',
      want: { type: 'bind', target: '/in', source: '/out', from: 'builder', readwrite: true },
    },
    {
      name: 'bind source/destination and readwrite=true',
      spec: 'type=bind,source=go.sum,destination=/go.sum,readwrite=true',
      want: { type: 'bind', target: '/go.sum', source: 'go.sum', readwrite: true },
    },
    {
      name: 'bind readonly=false means read-write',
      spec: 'type=bind,target=/x,readonly=false',
      want: { type: 'bind', target: '/x', source: '/', readwrite: true },
    },
    {
      name: 'secret defaults',
      spec: 'type=secret,id=npmrc',
      want: {
        type: 'secret',
        id: 'npmrc',
        target: '/run/secrets/npmrc',
        required: false,
        mode: 0o400,
        uid: 0,
        gid: 0,
      },
    },
    {
      name: 'secret id defaults to the target basename',
      spec: 'type=secret,target=/root/.npmrc,required,mode=0444,uid=1,gid=2',
      want: {
        type: 'secret',
        id: '.npmrc',
        target: '/root/.npmrc',
        required: true,
        mode: 0o444,
        uid: 1,
        gid: 2,
      },
    },
    {
      name: 'secret as env only',
      spec: 'type=secret,id=aws,env=AWS_TOKEN',
      want: { type: 'secret', id: 'aws', env: 'AWS_TOKEN', required: false, mode: 0o400, uid: 0, gid: 0 },
    },
    {
      name: 'secret env and target',
      spec: 'type=secret,id=k,env=K,target=/k,required=false',
      want: { type: 'secret', id: 'k', target: '/k', env: 'K', required: false, mode: 0o400, uid: 0, gid: 0 },
    },
    {
      name: 'ssh defaults with index',
      spec: 'type=ssh',
      index: 2,
      want: { type: 'ssh', id: 'default', target: '/run/buildkit/ssh_agent.2', required: false },
    },
    {
      name: 'ssh with id, target, required',
      spec: 'type=ssh,id=github,target=/s.sock,required=true',
      want: { type: 'ssh', id: 'github', target: '/s.sock', required: true },
    },
    {
      name: 'tmpfs with size',
      spec: 'type=tmpfs,target=/tmp,size=64m',
      want: { type: 'tmpfs', target: '/tmp', size: 64 * 1024 * 1024 },
    },
    { name: 'tmpfs without size', spec: 'type=tmpfs,dst=/t', want: { type: 'tmpfs', target: '/t' } },
    {
      name: 'type is case-insensitive',
      spec: 'type=TMPFS,target=/t,size=1g',
      want: { type: 'tmpfs', target: '/t', size: 1024 ** 3 },
    },
    {
      name: 'CSV quoting keeps a comma in a value',
      spec: 'type=bind,"target=/a,b"',
      want: { type: 'bind', target: '/a,b', source: '/', readwrite: false },
    },
  ];
  for (const c of cases)
    test(c.name, () => assert.deepEqual(parseRunMount(c.spec, at, c.index ?? 0), c.want));

  const bad: Array<{ name: string; spec: string }> = [
    { name: 'cache without target', spec: 'type=cache' },
    { name: 'unknown type', spec: 'type=volume,target=/x' },
    { name: 'key not valid for the type', spec: 'type=bind,target=/x,sharing=locked' },
    { name: 'bad sharing', spec: 'type=cache,target=/x,sharing=sometimes' },
    { name: 'mode not octal', spec: 'type=cache,target=/x,mode=0999' },
    { name: 'uid not a number', spec: 'type=cache,target=/x,uid=root' },
    { name: 'bad size', spec: 'type=tmpfs,target=/x,size=lots' },
    { name: 'secret without id or target', spec: 'type=secret' },
    { name: 'bare non-boolean key', spec: 'type=bind,target' },
    { name: 'bad boolean', spec: 'type=secret,id=x,required=maybe' },
    { name: 'tmpfs without target', spec: 'type=tmpfs,size=1m' },
  ];
  for (const c of bad) {
    test(`error: ${c.name}`, () => void expectKilnError(() => parseRunMount(c.spec, at), 'BAD_MOUNT', 7));
  }
});
