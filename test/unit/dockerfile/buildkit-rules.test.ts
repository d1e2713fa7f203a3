/**
 * Table cases for the Dockerfile rules of issue 15, one table per rule, each case one branch of
 * BuildKit's implementation (the source named above each table): line continuation (parser.go
 * lineContinuationRegex), JSON-form validation (line_parsers.go parseJSON), RUN --mount parsing
 * (instructions/commands_runmount.go parseMount, dockerfile2llb convert_secrets.go dispatchSecret),
 * cache mount identity (convert_runmount.go, solver/llbsolver/mounts/mount.go getRefCacheDir), heredoc
 * escape processing (dockerfile2llb convert.go ExpandRaw with shell.Lex SkipProcessQuotes) and the
 * predefined ARGs (dockerfile2llb/platform.go defaultArgs).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../../src/dockerfile/parser.ts';
import { parseInstruction, type Instruction } from '../../../src/dockerfile/instructions.ts';
import { cacheMountKey, parseRunMount, type RunMountRequest } from '../../../src/dockerfile/mounts.ts';
import { planFromText } from '../../../src/plan/plan.ts';
import { KilnError } from '../../../src/util/errors.ts';

const PLATFORMS = {
  targetPlatform: { os: 'linux', architecture: 'amd64' },
  buildPlatform: { os: 'linux', architecture: 'amd64' },
};

function parse(text: string): Instruction[] {
  const ast = parseDockerfile(text, 'Dockerfile');
  return ast.instructions.map((r) =>
    parseInstruction(r, { escape: ast.directives.escape, file: 'Dockerfile' }),
  );
}

function kilnError(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  assert.fail('expected a KilnError');
}

describe('line continuation (BuildKit lineContinuationRegex)', () => {
  // [name, Dockerfile, values of the ENV instructions it gives]
  const cases: Array<[string, string, Array<[string, string]>]> = [
    [
      'an escaped backslash at the end of a line ends the instruction',
      'ENV C trailing\\\\backslash\\\\\nENV D not-appended\n',
      [
        ['C', 'trailing\\\\backslash\\\\'],
        ['D', 'not-appended'],
      ],
    ],
    [
      'a single backslash continues',
      'ENV A=1 \\\n  B=2\n',
      [
        ['A', '1'],
        ['B', '2'],
      ],
    ],
    [
      'blanks after the backslash still continue',
      'ENV A=1 \\  \t\n  B=2\n',
      [
        ['A', '1'],
        ['B', '2'],
      ],
    ],
    [
      'three backslashes end the line too (BuildKit cannot tell an escaped escape before a token)',
      'ENV A x\\\\\\\nENV B y\n',
      [
        ['A', 'x\\\\\\'],
        ['B', 'y'],
      ],
    ],
    [
      'a lone backslash line continues',
      'ENV A=1 \\\n\\\n B=2\n',
      [
        ['A', '1'],
        ['B', '2'],
      ],
    ],
    [
      'a comment inside a continuation is dropped',
      'ENV A=1 \\\n# note\n B=2\n',
      [
        ['A', '1'],
        ['B', '2'],
      ],
    ],
    [
      'a backslash inside a line does not continue',
      'ENV A a\\b\nENV B c\n',
      [
        ['A', 'a\\b'],
        ['B', 'c'],
      ],
    ],
    [
      'with escape=` a backtick continues',
      '# escape=`\nENV A=1 `\n B=2\n',
      [
        ['A', '1'],
        ['B', '2'],
      ],
    ],
    [
      'with escape=` an escaped backtick ends the line',
      '# escape=`\nENV A x``\nENV B y\n',
      [
        ['A', 'x``'],
        ['B', 'y'],
      ],
    ],
    [
      'with escape=` a trailing backslash is a plain character',
      '# escape=`\nENV A c:\\\nENV B y\n',
      [
        ['A', 'c:\\'],
        ['B', 'y'],
      ],
    ],
    ['a continuation into the end of the file ends the instruction', 'ENV A=1 \\\n', [['A', '1']]],
    [
      'an escaped backslash followed by blanks ends the line',
      'ENV A x\\\\  \nENV B y\n',
      [
        ['A', 'x\\\\'],
        ['B', 'y'],
      ],
    ],
    ['continuation lines keep their leading blanks', 'ENV A a\\\n   b\n', [['A', 'a   b']]],
  ];
  for (const [name, text, want] of cases) {
    test(name, () => {
      const got = parse(text).flatMap((i) => (i.kind === 'env' ? i.pairs : [['?', i.kind]]));
      assert.deepEqual(got, want);
    });
  }

  test('an empty continuation line is skipped and reported', () => {
    const ast = parseDockerfile('ENV A=1 \\\n\n B=2\n');
    assert.equal(ast.instructions.length, 1);
    assert.deepEqual(
      ast.warnings.map((w) => w.code),
      ['NoEmptyContinuation'],
    );
  });

  test('a continued RUN keeps the escaped backslash of its last line', () => {
    const [run] = parse('RUN echo a \\\n && echo b\\\\\nRUN echo c\n');
    assert.deepEqual(run, { ...run, command: { form: 'shell', script: 'echo a  && echo b\\\\' } });
  });
});

describe('JSON form (BuildKit parseJSON: arrays must be comprised of strings only)', () => {
  const errors: Array<[string, string]> = [
    ['a number in CMD', 'CMD ["echo", 1]'],
    ['a number in RUN', 'RUN ["sleep", 1]'],
    ['null in ENTRYPOINT', 'ENTRYPOINT ["sh", null]'],
    ['a boolean in RUN', 'RUN ["true", true]'],
    ['a nested array in CMD', 'CMD [["a"]]'],
    ['an object in CMD', 'CMD [{"a": 1}]'],
    ['a number in SHELL', 'SHELL ["/bin/sh", 1]'],
    ['a number in VOLUME', 'VOLUME ["/data", 2]'],
    ['a number in COPY', 'COPY ["a", 1]'],
    ['a number in ADD', 'ADD ["a", 1, "/d/"]'],
    ['a number in HEALTHCHECK CMD', 'HEALTHCHECK CMD ["curl", 8080]'],
    ['a number in an ONBUILD trigger', 'ONBUILD RUN ["echo", 1]'],
    ['leading blanks before the array', 'CMD    ["echo", 1]'],
  ];
  for (const [name, line] of errors) {
    test(`a JSON array with a non-string element is an error: ${name}`, () => {
      const e = kilnError(() => parse(line + '\n'));
      assert.equal(e.code, 'BAD_ARGUMENTS');
      assert.match(e.message, /arrays must be comprised of strings only/);
      assert.equal(e.position?.line, 1);
    });
  }

  const shell: Array<[string, string, string]> = [
    ['invalid JSON is the shell form', 'CMD ["echo", hi]', '["echo", hi]'],
    ['text after the array is the shell form', 'CMD ["echo"] extra', '["echo"] extra'],
    ['an unclosed array is the shell form', 'RUN ["echo"', '["echo"'],
    ['single quotes are not JSON', "CMD ['echo']", "['echo']"],
  ];
  for (const [name, line, script] of shell) {
    test(name, () => {
      const [ins] = parse(line + '\n');
      assert.deepEqual((ins as { command: unknown }).command, { form: 'shell', script });
    });
  }

  const exec: Array<[string, string, string[]]> = [
    ['an array of strings is the exec form', 'CMD ["echo", "1"]', ['echo', '1']],
    ['an empty array is an empty exec form', 'CMD []', []],
    ['escapes in JSON strings are decoded', 'CMD ["a\\tb", "\\u00e9"]', ['a\tb', 'é']],
    ['blanks inside the array are allowed', 'ENTRYPOINT [ "sh" , "-c" ]', ['sh', '-c']],
  ];
  for (const [name, line, argv] of exec) {
    test(name, () => {
      const [ins] = parse(line + '\n');
      assert.deepEqual((ins as { command: unknown }).command, { form: 'exec', argv });
    });
  }

  test('VOLUME and COPY fall back to white-space lists on invalid JSON', () => {
    const [vol, copy] = parse('VOLUME [/a /b\nCOPY [a b\n');
    assert.deepEqual((vol as { values: string[] }).values, ['[/a', '/b']);
    assert.deepEqual((copy as { sources: string[] }).sources, ['[a']);
  });
});

describe('RUN --mount parsing (BuildKit parseMount, dispatchSecret)', () => {
  const at = { file: 'Dockerfile', line: 3 };
  const cases: Array<[string, string, Partial<RunMountRequest>]> = [
    ['readonly as t is true (strconv.ParseBool)', 'type=bind,target=/x,readonly=t', { readwrite: false }],
    ['rw=T is read-write', 'type=bind,target=/x,rw=T', { readwrite: true }],
    ['rw=TRUE is read-write', 'type=bind,target=/x,rw=TRUE', { readwrite: true }],
    ['rw=True is read-write', 'type=bind,target=/x,rw=True', { readwrite: true }],
    ['rw=0 is read-only', 'type=bind,target=/x,rw=0', { readwrite: false }],
    ['ro=F is read-write', 'type=bind,target=/x,ro=F', { readwrite: true }],
    ['the last of ro and rw wins (rw last)', 'type=bind,target=/x,ro,rw', { readwrite: true }],
    ['the last of ro and rw wins (ro last)', 'type=bind,target=/x,rw,ro', { readwrite: false }],
    ['a cache is read-write by default', 'type=cache,target=/c', { readonly: false }],
    ['rw=false on a cache makes it read-only', 'type=cache,target=/c,rw=false', { readonly: true }],
    ['ro then rw on a cache is read-write', 'type=cache,target=/c,ro,rw', { readonly: false }],
    ['a cache id defaults to the cleaned target', 'type=cache,target=/c//d/', { id: '/c/d' }],
    ['a relative cache target keeps a relative id', 'type=cache,target=cache/', { id: 'cache' }],
    ['keys are case-insensitive', 'TYPE=cache,TARGET=/c,ID=x', { id: 'x', target: '/c' }],
    ['mode is octal', 'type=cache,target=/c,mode=750', { mode: 0o750 }],
    ['uid and gid are decimal', 'type=cache,target=/c,uid=010,gid=20', { uid: 10, gid: 20 }],
    ['a secret id defaults to the target base name', 'type=secret,target=/run/a/tok', { id: 'tok' }],
    ['a secret source is its id', 'type=secret,source=npm,target=/n', { id: 'npm', target: '/n' }],
    ['a secret src alias is its id', 'type=secret,src=npm', { id: 'npm', target: '/run/secrets/npm' }],
    [
      'a secret default target uses the base name of a path-like id',
      'type=secret,id=a/b',
      { id: 'a/b', target: '/run/secrets/b' },
    ],
    [
      'a secret with env and no target is env only',
      'type=secret,id=t,env=T',
      { env: 'T', target: undefined },
    ],
    ['a secret with env and target is both', 'type=secret,id=t,env=T,dst=/t', { env: 'T', target: '/t' }],
    ['a secret is optional by default', 'type=secret,id=t', { required: false }],
    ['required=1 makes a secret required', 'type=secret,id=t,required=1', { required: true }],
    ['secret mode defaults to 0400', 'type=secret,id=t', { mode: 0o400 }],
    ['ssh id defaults to "default"', 'type=ssh', { id: 'default' }],
    ['tmpfs size takes binary units', 'type=tmpfs,target=/t,size=2k', { size: 2048 }],
  ];
  for (const [name, spec, want] of cases) {
    test(name, () => {
      const got = parseRunMount(spec, at) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k], v, k);
    });
  }

  const bad: Array<[string, string]> = [
    ['a bare word that is not a boolean key', 'type=cache,target=/c,shared'],
    ['an empty field', 'type=cache,,target=/c'],
    ['a trailing comma', 'type=cache,target=/c,'],
    ['a key with a leading blank (keys are not trimmed)', 'type=cache, target=/c'],
    ['tRuE is not a Go boolean', 'type=bind,target=/x,rw=tRuE'],
    ['yes is not a Go boolean', 'type=secret,id=x,required=yes'],
    ['uid above 32 bits', 'type=cache,target=/c,uid=4294967296'],
    ['a negative gid', 'type=cache,target=/c,gid=-1'],
    ['mode with a non-octal digit', 'type=cache,target=/c,mode=8'],
    ['mode above 32 bits', 'type=cache,target=/c,mode=77777777777'],
    ['a target of /', 'type=cache,target=/'],
    ['a target that cleans to /', 'type=bind,target=//./'],
    ['a secret with both source and id', 'type=secret,id=a,source=b'],
    ['a secret with env only (no id, source or target)', 'type=secret,env=TOKEN'],
    ['a secret with from', 'type=secret,id=a,from=stage'],
    ['a secret with sharing', 'type=secret,id=a,sharing=locked'],
    ['sharing on a bind mount', 'type=bind,target=/x,sharing=shared'],
    ['uid on a bind mount', 'type=bind,target=/x,uid=1'],
    ['mode on a tmpfs mount', 'type=tmpfs,target=/x,mode=0700'],
    ['size on a cache mount', 'type=cache,target=/c,size=1m'],
    ['required on a cache mount', 'type=cache,target=/c,required'],
    ['an unknown mount type', 'type=volume,target=/v'],
    ['a sharing value BuildKit does not know', 'type=cache,target=/c,sharing=exclusive'],
  ];
  for (const [name, spec] of bad) {
    test(`refused: ${name}`, () => {
      const e = kilnError(() => parseRunMount(spec, at));
      assert.equal(e.code, 'BAD_MOUNT');
      assert.equal(e.position?.line, 3);
    });
  }
});

describe('cache mount identity (BuildKit: id or path.Clean(target), plus the base it starts from)', () => {
  const key = (spec: string): string => {
    const r = parseRunMount(spec);
    assert.equal(r.type, 'cache');
    return cacheMountKey(r as RunMountRequest & { type: 'cache' });
  };
  const same: Array<[string, string, string]> = [
    ['cache mount targets /c/ and /c are one cache', 'type=cache,target=/c/', 'type=cache,target=/c'],
    ['/c/. and /c are one cache', 'type=cache,target=/c/.', 'type=cache,target=/c'],
    ['//c and /c are one cache', 'type=cache,target=//c', 'type=cache,target=/c'],
    ['/a/../c and /c are one cache', 'type=cache,target=/a/../c', 'type=cache,target=/c'],
    ['one id on two targets is one cache', 'type=cache,id=go,target=/a', 'type=cache,id=go,target=/b'],
    ['an id equal to the target is the default cache', 'type=cache,id=/c,target=/x', 'type=cache,target=/c'],
    ['sharing does not change the cache', 'type=cache,target=/c,sharing=locked', 'type=cache,target=/c'],
    ['readonly does not change the cache', 'type=cache,target=/c,ro', 'type=cache,target=/c'],
    [
      'the same explicit owner is the same cache',
      'type=cache,target=/c,uid=1,gid=2,mode=0700',
      'type=cache,target=/c,mode=700,gid=2,uid=1',
    ],
  ];
  for (const [name, a, b] of same) test(name, () => assert.equal(key(a), key(b)));

  const different: Array<[string, string, string]> = [
    [
      'a cache mount with uid, gid and mode is another cache',
      'type=cache,target=/c,uid=1000,gid=1000,mode=0700',
      'type=cache,target=/c',
    ],
    ['uid alone makes another cache', 'type=cache,target=/c,uid=1000', 'type=cache,target=/c'],
    ['gid alone makes another cache', 'type=cache,target=/c,gid=1000', 'type=cache,target=/c'],
    ['mode alone makes another cache', 'type=cache,target=/c,mode=0700', 'type=cache,target=/c'],
    ['an explicit uid=0 is another cache than none', 'type=cache,target=/c,uid=0', 'type=cache,target=/c'],
    ['two modes are two caches', 'type=cache,target=/c,mode=0700', 'type=cache,target=/c,mode=0750'],
    ['two uids are two caches', 'type=cache,target=/c,uid=1', 'type=cache,target=/c,uid=2'],
    ['a seed from a stage is another cache', 'type=cache,target=/c,from=seed', 'type=cache,target=/c'],
    [
      'two seeds are two caches',
      'type=cache,target=/c,from=a,source=/x',
      'type=cache,target=/c,from=a,source=/y',
    ],
    ['two targets are two caches', 'type=cache,target=/c', 'type=cache,target=/d'],
    ['two ids are two caches', 'type=cache,id=a,target=/c', 'type=cache,id=b,target=/c'],
    ['a relative target is not the absolute one', 'type=cache,target=c', 'type=cache,target=/c'],
  ];
  for (const [name, a, b] of different) test(name, () => assert.notEqual(key(a), key(b)));

  test('a plain cache keeps the key caches had before (its id), so existing caches stay valid', () => {
    assert.equal(key('type=cache,target=/root/.cache'), '/root/.cache');
  });
});

describe('COPY heredoc escape processing (BuildKit ExpandRaw: escape \\, quotes kept)', () => {
  const body = (doc: string, opts: { delim?: string; escape?: string; kw?: string } = {}): string => {
    const d = opts.delim ?? 'EOF';
    const text =
      (opts.escape ? `# escape=${opts.escape}\n` : '') +
      `FROM scratch\nENV X=val E=\nARG A=arg\n${opts.kw ?? 'COPY'} <<${d} /out\n${doc}\nEOF\n`;
    const p = planFromText(text, 'Dockerfile', PLATFORMS);
    const ins = p.stages[0]!.instructions.at(-1)!.expanded;
    assert.ok(ins.kind === 'copy' || ins.kind === 'add');
    return ins.heredocs[0]!.content;
  };
  const cases: Array<[string, string, string, { delim?: string; escape?: string; kw?: string }?]> = [
    ['a variable is expanded', 'a=$X', 'a=val\n'],
    ['a braced variable is expanded', 'a=${X}', 'a=val\n'],
    ['an escaped $ in an expanded COPY heredoc stays a literal $', 'b=\\$X', 'b=$X\n'],
    ['an escaped ${ stays literal', 'c=\\${X}', 'c=${X}\n'],
    ['an escaped backslash is one backslash', 'd=\\\\', 'd=\\\n'],
    ['a backslash before another character is dropped', 'e=a\\tb', 'e=atb\n'],
    ['a backslash at the end of a line escapes the newline', 'f=\\', 'f=\n'],
    ['double quotes are kept and their content expanded', 'g="$X"', 'g="val"\n'],
    ['single quotes are kept and their content expanded', "h='$X'", "h='val'\n"],
    ['a default is applied', 'i=${UNSET:-dflt}', 'i=dflt\n'],
    ['an unset variable is empty', 'j=[$UNSET]', 'j=[]\n'],
    ['an empty ENV is empty', 'k=[${E:-empty}]', 'k=[empty]\n'],
    ['a stage ARG is expanded', 'l=$A', 'l=arg\n'],
    ['a lone $ stays', 'm=$ n', 'm=$ n\n'],
    ['a quoted delimiter keeps everything literal', 'o=\\$X $X', 'o=\\$X $X\n', { delim: '"EOF"' }],
    ['a single-quoted delimiter keeps everything literal', 'p=$X\\\\', 'p=$X\\\\\n', { delim: "'EOF'" }],
    ['the escape directive does not change heredoc escapes', 'q=\\$X `$X', 'q=$X `val\n', { escape: '`' }],
    ['ADD heredocs follow the same rules', 'r=\\$X $X', 'r=$X val\n', { kw: 'ADD' }],
    ['<<- strips tabs and expands', '\t\ts=\\$X$X', 's=$Xval\n', { delim: '-EOF' }],
  ];
  for (const [name, doc, want, opts] of cases) test(name, () => assert.equal(body(doc, opts), want));

  test('RUN heredocs are left to the shell', () => {
    const p = planFromText(
      'FROM scratch\nENV X=val\nRUN <<EOF\necho \\$X $X\nEOF\n',
      'Dockerfile',
      PLATFORMS,
    );
    const ins = p.stages[0]!.instructions.at(-1)!.expanded;
    assert.equal(ins.kind === 'run' ? ins.heredocs[0]!.content : '', 'echo \\$X $X\n');
  });
});

describe('predefined ARGs (BuildKit defaultArgs)', () => {
  const valueOf = (
    text: string,
    opts: { target?: string; buildArgs?: Record<string, string> } = {},
  ): string => {
    const p = planFromText(text, 'Dockerfile', { ...PLATFORMS, ...opts });
    const label = p.stages
      .flatMap((st) => st.instructions.map((i) => i.expanded))
      .find((i) => i.kind === 'label');
    assert.ok(label && label.kind === 'label');
    return label.pairs[0]![1];
  };
  const cases: Array<[string, string, string, { target?: string; buildArgs?: Record<string, string> }?]> = [
    [
      'ARG TARGETSTAGE is the name of the stage being built',
      'FROM scratch AS final\nARG TARGETSTAGE\nLABEL v=$TARGETSTAGE\n',
      'final',
    ],
    [
      'TARGETSTAGE is "default" for an unnamed last stage',
      'FROM scratch\nARG TARGETSTAGE\nLABEL v=$TARGETSTAGE\n',
      'default',
    ],
    [
      'TARGETSTAGE follows --target',
      'FROM scratch AS one\nARG TARGETSTAGE\nLABEL v=$TARGETSTAGE\nFROM scratch AS two\n',
      'one',
      { target: 'one' },
    ],
    [
      'TARGETSTAGE is the target, also in a stage the target builds on',
      'FROM scratch AS base\nARG TARGETSTAGE\nLABEL v=$TARGETSTAGE\nFROM base AS app\n',
      'app',
    ],
    [
      'TARGETSTAGE is visible to global ARG defaults',
      'ARG S=stage-$TARGETSTAGE\nFROM scratch AS final\nARG S\nLABEL v=$S\n',
      'stage-final',
    ],
    ['TARGETSTAGE needs an ARG inside a stage', 'FROM scratch AS final\nLABEL v=[$TARGETSTAGE]\n', '[]'],
    [
      'a --build-arg replaces TARGETSTAGE',
      'FROM scratch AS final\nARG TARGETSTAGE\nLABEL v=$TARGETSTAGE\n',
      'custom',
      { buildArgs: { TARGETSTAGE: 'custom' } },
    ],
    [
      'TARGETOSVERSION is defined (empty on Linux)',
      'FROM scratch\nARG TARGETOSVERSION\nLABEL v=[$TARGETOSVERSION]\n',
      '[]',
    ],
    [
      'BUILDOSVERSION is defined (empty on Linux)',
      'FROM scratch\nARG BUILDOSVERSION\nLABEL v=[${BUILDOSVERSION-unset}]\n',
      '[]',
    ],
    ['TARGETARCH keeps working', 'FROM scratch\nARG TARGETARCH\nLABEL v=$TARGETARCH\n', 'amd64'],
    [
      'a --build-arg replaces TARGETARCH for global ARGs too',
      'ARG G=$TARGETARCH\nFROM scratch\nARG G\nLABEL v=$G\n',
      'riscv64',
      { buildArgs: { TARGETARCH: 'riscv64' } },
    ],
    [
      'an ARG default overrides TARGETSTAGE',
      'FROM scratch AS final\nARG TARGETSTAGE=mine\nLABEL v=$TARGETSTAGE\n',
      'mine',
    ],
  ];
  for (const [name, text, want, opts] of cases) test(name, () => assert.equal(valueOf(text, opts), want));

  test('the plan records the target stage name for the executor', () => {
    const p = planFromText('FROM scratch AS a\nFROM scratch AS b\n', 'Dockerfile', {
      ...PLATFORMS,
      target: 'a',
    });
    assert.equal(p.targetStage, 'a');
  });
});

describe('ARG names are expanded (BuildKit ArgCommand.Expand)', () => {
  const label = (text: string): string => {
    const p = planFromText(text, 'Dockerfile', PLATFORMS);
    const l = p.stages
      .at(-1)!
      .instructions.map((i) => i.expanded)
      .find((i) => i.kind === 'label');
    assert.ok(l && l.kind === 'label');
    return l.pairs[0]![1];
  };
  test('an ARG whose name comes from an ENV declares that name', () => {
    assert.equal(label('FROM scratch\nENV src=file3\nARG ${src}=dflt\nLABEL v=$file3\n'), 'dflt');
  });
  test('a global ARG whose name comes from an earlier global ARG', () => {
    assert.equal(label('ARG N=name\nARG ${N}=val\nFROM scratch\nARG name\nLABEL v=$name\n'), 'val');
  });
});
