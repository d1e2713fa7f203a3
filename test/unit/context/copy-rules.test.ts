/**
 * Table cases for the COPY/ADD file rules of issue 15, each case one branch of BuildKit's file side:
 * wildcard expansion and empty matches (dockerfile2llb convert_copy.go AllowWildcard +
 * AllowEmptyWildcard, fsutil copy ResolveWildcards, one Copy per match), where each match lands
 * (fsutil copy prepareTargetDir), the --chmod grammar (convert_copy.go: octal up to 07777, else
 * tonistiigi/dchapes-mode), implicit-parent modes (fsutil copy.Copy MkdirAll with CopyInfo.Mode),
 * user resolution for file operations (client/llb/fileop.go WithUser/parseUID,
 * solver/llbsolver/ops/user_linux.go readUser) and secret/ENV precedence in RUN's environment
 * (solver/llbsolver/ops/exec.go: secret env appended after the config's Env).
 * Runs as root (chown); real files in a temp dir, no mocks.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContextSource } from '../../../src/context/sources.ts';
import { IgnoreMatcher, parseDockerignore } from '../../../src/context/dockerignore.ts';
import { copyIntoRoot, type CopyOptions } from '../../../src/executor/copy-files.ts';
import { applyChmod, parseChmod } from '../../../src/executor/chmod.ts';
import { resolveChown, resolveFileOwner, resolveUser } from '../../../src/executor/passwd.ts';
import { StageBuilder } from '../../../src/executor/stage-builder.ts';
import { KilnError } from '../../../src/util/errors.ts';

const at = { file: 'Dockerfile', line: 4 };
let base = '';
let n = 0;
before(() => {
  base = mkdtempSync(join(tmpdir(), 'kiln-copy-rules-'));
});
after(() => rmSync(base, { recursive: true, force: true }));

/** A fresh directory holding `files` (a trailing "/" makes a directory). */
function tree(files: string[]): string {
  const dir = join(base, `t${++n}`);
  mkdirSync(dir);
  for (const f of files) {
    if (f.endsWith('/')) mkdirSync(join(dir, f), { recursive: true });
    else {
      mkdirSync(join(dir, f, '..'), { recursive: true });
      writeFileSync(join(dir, f), f);
    }
  }
  return dir;
}

const CONTEXT = [
  'a.txt',
  'b.txt',
  'c.md',
  '[x].txt',
  '*.lit',
  'dir1/f1',
  'dir2/f2',
  'deep/one/x.go',
  'deep/two/x.go',
  'deep/two/y.go',
  'hidden/h.txt',
  'hidden/keep.txt',
  'package.json',
];

describe('wildcard expansion and empty matches', () => {
  let ctx: ContextSource;
  before(() => {
    const dir = tree(CONTEXT);
    ctx = new ContextSource(
      dir,
      new IgnoreMatcher(parseDockerignore('hidden/h.txt\n*.secret\n', '.dockerignore')),
    );
  });
  const cases: Array<[string, string, string[]]> = [
    ['a wildcard matching one file', 'a.tx?', ['a.txt']],
    ['* matches several, sorted', '*.txt', ['[x].txt', 'a.txt', 'b.txt']],
    ['? matches one character', '?.md', ['c.md']],
    ['a class matches its characters', '[ab].txt', ['a.txt', 'b.txt']],
    ['a negated class with !', '[!a].txt', ['b.txt']],
    ['a negated class with ^', '[^b].txt', ['a.txt']],
    ['a range', '[a-b].txt', ['a.txt', 'b.txt']],
    ['an escaped * is literal', '\\*.lit', ['*.lit']],
    ['an escaped [ is literal', '\\[x\\].txt', ['[x].txt']],
    ['a wildcard in a directory component', 'dir?/*', ['dir1/f1', 'dir2/f2']],
    ['a wildcard matching directories', 'dir*', ['dir1', 'dir2']],
    ['wildcards at two levels', 'deep/*/*.go', ['deep/one/x.go', 'deep/two/x.go', 'deep/two/y.go']],
    ['* does not cross /', 'deep/*.go', []],
    ['a wildcard matching nothing copies nothing', 'yarn.lock*', []],
    ['a wildcard in a missing directory matches nothing', 'nodir/*', []],
    ['.dockerignore hides a match', 'hidden/*', ['hidden/keep.txt']],
    ['a match left alone by .dockerignore', 'hidden/k*', ['hidden/keep.txt']],
    ['everything ignored is an empty match', 'hidden/h*', []],
    ['a leading ./ is cleaned', './a.t?t', ['a.txt']],
    ['a leading / is the context root', '/b.t*', ['b.txt']],
    ['.. cannot leave the context', '../../*.txt', ['[x].txt', 'a.txt', 'b.txt']],
  ];
  for (const [name, src, want] of cases) {
    test(name, async () => {
      const r = await ctx.resolve(src, at);
      assert.equal(r.wildcard, true);
      assert.deepEqual(
        r.sources.map((s) => s.relPath),
        want,
      );
    });
  }
  test('a missing path without wildcards is an error', async () => {
    await assert.rejects(
      ctx.resolve('yarn.lock', at),
      (e: unknown) => e instanceof KilnError && e.code === 'COPY_SOURCE_MISSING',
    );
  });
  test('an ignored path without wildcards is an error', async () => {
    await assert.rejects(
      ctx.resolve('hidden/h.txt', at),
      (e: unknown) => e instanceof KilnError && /dockerignore/.test(e.message),
    );
  });
  test('a path without wildcards is not a wildcard', async () => {
    assert.equal((await ctx.resolve('a.txt', at)).wildcard, false);
  });
});

describe('where each COPY source lands (one copy per match)', () => {
  const opts = (o: Partial<CopyOptions>): CopyOptions => ({
    dest: '/',
    workdir: '/',
    preserveOwnership: false,
    parents: false,
    multiple: true,
    position: at,
    ...o,
  });
  const srcs = (dir: string, rels: string[]) =>
    rels.map((r) => ({ hostPath: join(dir, r), sourceRoot: dir, relPath: r }));
  // [name, sources, dest, pre-existing dirs in the root, expected files (path=content) or an error]
  const cases: Array<[string, string[], string, string[], string[] | 'error']> = [
    ['one wildcard match to a name without a slash is that file', ['a.txt'], '/foo2', [], ['/foo2=a.txt']],
    ['one match to an existing directory goes inside it', ['a.txt'], '/d', ['d/'], ['/d/a.txt=a.txt']],
    ['one match to a name with a slash goes inside it', ['a.txt'], '/d/', [], ['/d/a.txt=a.txt']],
    [
      'two files to a directory with a slash',
      ['a.txt', 'b.txt'],
      '/d/',
      [],
      ['/d/a.txt=a.txt', '/d/b.txt=b.txt'],
    ],
    [
      'two files to an existing directory without a slash',
      ['a.txt', 'b.txt'],
      '/d',
      ['d/'],
      ['/d/a.txt=a.txt', '/d/b.txt=b.txt'],
    ],
    [
      'two files to a name without a slash are refused (one would overwrite the other)',
      ['a.txt', 'b.txt'],
      '/out',
      [],
      'error',
    ],
    [
      'two directories merge into a name without a slash',
      ['dir1', 'dir2'],
      '/m',
      [],
      ['/m/f1=dir1/f1', '/m/f2=dir2/f2'],
    ],
    [
      'a directory and a file to a name with a slash',
      ['dir1', 'a.txt'],
      '/m/',
      [],
      ['/m/f1=dir1/f1', '/m/a.txt=a.txt'],
    ],
    ['one file and a directory to a name without a slash are allowed', ['dir1'], '/m', [], ['/m/f1=dir1/f1']],
    ['"." is a directory', ['a.txt', 'b.txt'], '.', [], ['/a.txt=a.txt', '/b.txt=b.txt']],
    [
      'a name ending in /. is a directory',
      ['a.txt', 'b.txt'],
      '/x/.',
      [],
      ['/x/a.txt=a.txt', '/x/b.txt=b.txt'],
    ],
    ['a symlink to a directory counts as a directory', ['dir1', 'link1'], '/m', [], ['/m/f1=dir1/f1']],
    ['no sources copy nothing', [], '/none', [], []],
  ];
  for (const [name, sources, dest, pre, want] of cases) {
    test(name, async () => {
      const ctx = tree(['a.txt', 'b.txt', 'dir1/f1', 'dir2/f2']);
      symlinkSync('dir1', join(ctx, 'link1'));
      const root = tree(pre);
      const run = copyIntoRoot(root, srcs(ctx, sources), opts({ dest }));
      if (want === 'error') {
        await assert.rejects(run, (e: unknown) => e instanceof KilnError && e.code === 'COPY_DEST_NOT_DIR');
        return;
      }
      await run;
      for (const w of want) {
        const [p, content] = w.split('=') as [string, string];
        assert.equal(readFileSync(join(root, p), 'utf8'), content, p);
      }
    });
  }
});

describe('--chmod grammar (octal up to 07777, else chmod(1) symbolic as BSD setmode)', () => {
  // [spec, mode before, is a directory, mode after]
  const cases: Array<[string, number, boolean, number]> = [
    ['go=u', 0o644, false, 0o666],
    ['go=u', 0o750, true, 0o777],
    ['g=u', 0o604, false, 0o664],
    ['o=g', 0o750, false, 0o755],
    ['u=g', 0o070, false, 0o770],
    ['go+u', 0o500, false, 0o555],
    ['go-u', 0o777, false, 0o700],
    ['a=u', 0o600, false, 0o666],
    ['=u', 0o700, false, 0o777],
    ['u=rwx,go=u-w', 0o644, false, 0o755],
    ['u+x-w', 0o644, false, 0o544],
    ['u=rw,g=r,o=', 0o777, false, 0o640],
    ['a=', 0o777, false, 0o000],
    ['=', 0o4755, false, 0o000],
    ['u=', 0o755, false, 0o055],
    ['=r', 0o777, false, 0o444],
    ['a-x', 0o755, false, 0o644],
    ['+X', 0o644, false, 0o644],
    ['+X', 0o744, false, 0o755],
    ['+X', 0o600, true, 0o711],
    ['u+X', 0o600, true, 0o700],
    ['a+rX', 0o600, false, 0o644],
    ['=X', 0o755, false, 0o000],
    ['-X', 0o755, false, 0o755],
    ['o+s', 0o755, false, 0o755],
    ['o+t', 0o755, true, 0o755],
    ['u+t', 0o755, true, 0o1755],
    ['+s', 0o755, false, 0o6755],
    ['ug+s', 0o755, false, 0o6755],
    ['g-s', 0o2755, true, 0o755],
    ['+rt', 0o700, true, 0o1700],
    ['a+t', 0o700, true, 0o1700],
    ['u=rwx,g=rx,o=rx', 0o000, false, 0o755],
    ['00755', 0o644, false, 0o755],
    ['7777', 0o644, false, 0o7777],
    ['1', 0o644, false, 0o001],
  ];
  for (const [spec, before, isDir, want] of cases) {
    test(`chmod ${spec} on ${before.toString(8)}${isDir ? ' (dir)' : ''} gives ${want.toString(8)}`, () => {
      assert.equal(applyChmod(parseChmod(spec, at), before, isDir).toString(8), want.toString(8));
    });
  }
  const bad = [
    '10000',
    '8',
    '0x1ff',
    '0o755',
    'u',
    'ux',
    ',',
    'u+x,',
    ',u+x',
    'u+y',
    'z+x',
    'u+x g+w',
    '+x!',
    'a=r;',
    '-1',
  ];
  for (const spec of bad) {
    test(`chmod "${spec}" is refused`, () => {
      assert.throws(
        () => parseChmod(spec, at),
        (e: unknown) => e instanceof KilnError && e.code === 'BAD_CHMOD' && e.position?.line === 4,
      );
    });
  }
  test('"+" with no permissions is a valid no-op', () => {
    assert.equal(applyChmod(parseChmod('+'), 0o640, false), 0o640);
  });
  test('"u+" with no permissions is a valid no-op too', () => {
    assert.equal(applyChmod(parseChmod('u+'), 0o640, false), 0o640);
  });
});

describe('modes of the directories COPY creates', () => {
  const run = async (
    dest: string,
    chmod: string | undefined,
    pre: string[] = [],
    chown?: { uid: number; gid: number },
  ): Promise<string> => {
    const ctx = tree(['f', 'dir/g']);
    const root = tree(pre);
    await copyIntoRoot(
      root,
      [{ hostPath: join(ctx, dest.endsWith('/') ? 'dir' : 'f'), sourceRoot: ctx, relPath: 'f' }],
      {
        dest,
        workdir: '/w',
        preserveOwnership: false,
        parents: false,
        multiple: false,
        ...(chmod ? { chmod: parseChmod(chmod) } : {}),
        ...(chown ? { chown } : {}),
      },
    );
    return root;
  };
  const mode = (root: string, p: string): string => {
    const st = lstatSync(join(root, p));
    return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
  };
  test('an octal --chmod is the mode of the directories COPY has to create', async () => {
    const root = await run('/dest/sub/f', '0750');
    assert.equal(mode(root, 'dest'), '0:0 750');
    assert.equal(mode(root, 'dest/sub'), '0:0 750');
    assert.equal(mode(root, 'dest/sub/f'), '0:0 750');
  });
  test('a symbolic --chmod leaves created directories at 0755', async () => {
    const root = await run('/dest/f', 'go-w');
    assert.equal(mode(root, 'dest'), '0:0 755');
  });
  test('without --chmod created directories are 0755', async () => {
    assert.equal(mode(await run('/dest/f', undefined), 'dest'), '0:0 755');
  });
  test('an existing parent keeps its mode', async () => {
    const root = await run('/dest/sub/f', '0700', ['dest/']);
    assert.equal(mode(root, 'dest').split(' ')[1], '755');
    assert.equal(mode(root, 'dest/sub'), '0:0 700');
  });
  test('the directory a directory source is copied into takes the octal mode', async () => {
    const root = await run('/into/', '0711');
    assert.equal(mode(root, 'into'), '0:0 711');
    assert.equal(mode(root, 'into/g'), '0:0 711');
  });
  test('created directories belong to the --chown user and keep a set-gid octal mode', async () => {
    const root = await run('/dest/f', '2750', [], { uid: 1000, gid: 1001 });
    assert.equal(mode(root, 'dest'), '1000:1001 2750');
  });
  test('a relative destination creates its parents under the workdir with the mode', async () => {
    const root = await run('rel/f', '0700');
    assert.equal(mode(root, 'w'), '0:0 700');
    assert.equal(mode(root, 'w/rel'), '0:0 700');
  });
});

describe('user resolution fallbacks', () => {
  let withPasswd = '';
  let empty = '';
  before(() => {
    withPasswd = tree([]);
    mkdirSync(join(withPasswd, 'etc'));
    writeFileSync(
      join(withPasswd, 'etc/passwd'),
      'root:x:0:0::/root:/bin/sh\napp:x:1500:1600::/home/app:/bin/sh\n',
    );
    writeFileSync(join(withPasswd, 'etc/group'), 'root:x:0:\napps:x:1600:\nextra:x:1700:app\n');
    empty = tree([]);
  });
  // WORKDIR's mkdir (BuildKit file op owner): [name, passwd?, spec, uid:gid]
  const fileOp: Array<[string, boolean, string, string]> = [
    ['USER root without /etc/passwd is 0:0', false, 'root', '0:0'],
    ['root:root without /etc/group is 0:0', false, 'root:root', '0:0'],
    ['a numeric USER without a passwd entry is uid:uid', false, '9999', '9999:9999'],
    ['a numeric USER with a passwd entry is still uid:uid', true, '1500', '1500:1500'],
    ['uid:gid is taken as written', false, '9999:50', '9999:50'],
    ['a named user takes its passwd uid and gid', true, 'app', '1500:1600'],
    ['a name missing from passwd is 0:0', true, 'ghost', '0:0'],
    ['a name without any passwd is 0:0', false, 'ghost', '0:0'],
    ['name:group takes the group from /etc/group', true, 'app:extra', '1500:1700'],
    ['an unknown group keeps the user gid', true, 'app:nogroup', '1500:1600'],
    ['a numeric user with a group name', true, '42:apps', '42:1600'],
    ['a numeric user with the root group', false, '42:root', '42:0'],
  ];
  for (const [name, passwd, spec, want] of fileOp) {
    test(name, async () => {
      const o = await resolveFileOwner(passwd ? withPasswd : empty, spec);
      assert.equal(`${o.uid}:${o.gid}`, want);
    });
  }
  const chown: Array<[string, boolean, string, string]> = [
    ['--chown=root without /etc/passwd is 0:0', false, 'root', '0:0'],
    ['--chown=root:root without /etc/group is 0:0', false, 'root:root', '0:0'],
    ['--chown=1000 is 1000:1000', false, '1000', '1000:1000'],
    ['--chown=app is its passwd uid and gid', true, 'app', '1500:1600'],
    ['--chown=app:root is app with gid 0', true, 'app:root', '1500:0'],
  ];
  for (const [name, passwd, spec, want] of chown) {
    test(name, async () => {
      const o = await resolveChown(passwd ? withPasswd : empty, spec, at);
      assert.equal(`${o.uid}:${o.gid}`, want);
    });
  }
  test('--chown with an unknown name is refused (accepted difference: BuildKit gives 0:0)', async () => {
    await assert.rejects(
      resolveChown(withPasswd, 'ghost', at),
      (e: unknown) => e instanceof KilnError && e.code === 'UNKNOWN_CHOWN_USER',
    );
  });
  // RUN as a user (runc's GetExecUser): a numeric uid without an entry runs with gid 0.
  test('RUN as a numeric USER without a passwd entry runs with gid 0 (runc)', async () => {
    const u = await resolveUser(empty, '9999', at);
    assert.equal(`${u.uid}:${u.gid}`, '9999:0');
  });
  test('RUN as an unknown user name is an error (runc)', async () => {
    await assert.rejects(
      resolveUser(empty, 'ghost', at),
      (e: unknown) => e instanceof KilnError && e.code === 'UNKNOWN_USER',
    );
  });
  test('RUN as a named user gets its supplementary groups', async () => {
    assert.deepEqual((await resolveUser(withPasswd, 'app', at)).additionalGids, [1700]);
  });
});

describe('secret env against ENV and ARG in RUN', () => {
  /** StageBuilder.runEnv only reads the stage config; the builder is not started. */
  const runEnv = (env: string[], extra: string[], override: string[]): string[] => {
    const b = Object.create(StageBuilder.prototype) as StageBuilder;
    b.config = { architecture: 'amd64', os: 'linux', config: { Env: env } } as StageBuilder['config'];
    return b.runEnv(extra, override);
  };
  const cases: Array<[string, string[], string[], string[], string[]]> = [
    [
      'a secret mounted as env wins over an ENV of the same name',
      ['TOKEN=from-env', 'PATH=/bin'],
      [],
      ['TOKEN=secret'],
      ['PATH=/bin', 'TOKEN=secret'],
    ],
    [
      'an ENV wins over an ARG of the same name',
      ['A=env', 'PATH=/bin'],
      ['A=arg'],
      [],
      ['A=env', 'PATH=/bin'],
    ],
    [
      'a secret wins over an ARG of the same name',
      ['PATH=/bin'],
      ['T=arg'],
      ['T=secret'],
      ['PATH=/bin', 'T=secret'],
    ],
    ['an ARG not in ENV is added', ['PATH=/bin'], ['B=arg'], [], ['PATH=/bin', 'B=arg']],
    [
      'a missing PATH gets the default',
      [],
      [],
      [],
      ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    ],
    ['a secret named PATH replaces it and no default is added', [], [], ['PATH=/s'], ['PATH=/s']],
    [
      'two secrets both win',
      ['X=1', 'Y=2', 'PATH=/bin'],
      [],
      ['X=s1', 'Y=s2'],
      ['PATH=/bin', 'X=s1', 'Y=s2'],
    ],
    ['a secret value may contain =', ['PATH=/bin'], [], ['K=a=b'], ['PATH=/bin', 'K=a=b']],
  ];
  for (const [name, env, extra, override, want] of cases)
    test(name, () => assert.deepEqual(runEnv(env, extra, override), want));
});
