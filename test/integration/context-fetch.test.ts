/**
 * materializeContext against real things: directories, tar archives made by GNU tar, a git repository
 * served by `git daemon` (git://) and by `git http-backend` behind a Basic-auth node server (http://),
 * and a tarball behind a redirecting node http server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, connect } from 'node:net';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultBuildOptions, type BuildOptions } from '../../src/options.ts';
import { materializeContext, parseContext, type ContextSpec } from '../../src/context/fetch.ts';
import { memoryLogger } from '../../src/log/logger.ts';
import { KilnError } from '../../src/util/errors.ts';
import { planForOptions } from '../../src/cli/plan-command.ts';

const TOKEN = 'tok-s3cr3t-9f8e7d';
const USER = 'oauth2';

let root: string;
let repos: string; // base path holding repo.git
let shaA: string; // main~1, tagged v1 (not a branch tip)
let shaB: string; // main tip
let shaC: string; // feature tip
let daemon: ChildProcess;
let daemonPort: number;
let httpServer: Server;
let httpPort: number;

function sh(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@example.com',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@example.com',
    },
  }).trim();
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createNetServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((res) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        res(true);
      });
      c.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} never opened`);
}

/** A tiny CGI bridge to `git http-backend`, with Basic auth. Also serves tarballs under /files/. */
function startHttp(filesDir: string): Promise<Server> {
  const expected = `Basic ${Buffer.from(`${USER}:${TOKEN}`).toString('base64')}`;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/redirect/ctx.tar.gz') {
      res.writeHead(302, { location: '/files/ctx.tar.gz' });
      res.end();
      return;
    }
    if (url.pathname.startsWith('/files/')) {
      readFile(join(filesDir, url.pathname.slice('/files/'.length))).then(
        (b) => {
          res.writeHead(200, { 'content-type': 'application/gzip' });
          res.end(b);
        },
        () => {
          res.writeHead(404);
          res.end('not found');
        },
      );
      return;
    }
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' });
      res.end('unauthorized');
      return;
    }
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      GIT_PROJECT_ROOT: repos,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: url.pathname,
      REQUEST_METHOD: req.method ?? 'GET',
      QUERY_STRING: url.search.replace(/^\?/, ''),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_USER: USER,
      REMOTE_ADDR: '127.0.0.1',
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);
    const cgi = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    req.pipe(cgi.stdin);
    let buf = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      let sep = buf.indexOf('\r\n\r\n');
      let sepLen = 4;
      if (sep < 0) {
        sep = buf.indexOf('\n\n');
        sepLen = 2;
      }
      if (sep < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of buf.subarray(0, sep).toString('utf8').split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = parseInt(v, 10);
        else res.setHeader(k, v);
      }
      res.writeHead(status);
      res.write(buf.subarray(sep + sepLen));
    });
    cgi.stdout.on('end', () => res.end());
  });
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res(server)));
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-ctx-'));
  // A repository: main A→B (v1 tags A), feature from A → C; sub/ differs between branches.
  const work = join(root, 'work');
  await mkdir(join(work, 'sub'), { recursive: true });
  sh('git', ['init', '-q', '-b', 'main'], work);
  await writeFile(join(work, 'which.txt'), 'main-A\n');
  await writeFile(join(work, 'sub', 'inner.txt'), 'sub-A\n');
  await writeFile(join(work, 'Dockerfile'), 'FROM scratch\nCOPY which.txt /\n');
  sh('git', ['add', '.'], work);
  sh('git', ['commit', '-q', '-m', 'A'], work);
  shaA = sh('git', ['rev-parse', 'HEAD'], work);
  sh('git', ['tag', 'v1'], work);
  sh('git', ['checkout', '-q', '-b', 'feature'], work);
  await writeFile(join(work, 'which.txt'), 'feature-C\n');
  await writeFile(join(work, 'sub', 'inner.txt'), 'sub-C\n');
  sh('git', ['commit', '-q', '-am', 'C'], work);
  shaC = sh('git', ['rev-parse', 'HEAD'], work);
  sh('git', ['checkout', '-q', 'main'], work);
  await writeFile(join(work, 'which.txt'), 'main-B\n');
  sh('git', ['commit', '-q', '-am', 'B'], work);
  shaB = sh('git', ['rev-parse', 'HEAD'], work);
  repos = join(root, 'repos');
  await mkdir(repos);
  sh('git', ['clone', '-q', '--bare', work, join(repos, 'repo.git')], root);

  daemonPort = await freePort();
  daemon = spawn(
    'git',
    [
      'daemon',
      '--export-all',
      `--base-path=${repos}`,
      `--port=${daemonPort}`,
      '--listen=127.0.0.1',
      '--reuseaddr',
      repos,
    ],
    { stdio: 'ignore' },
  );
  await waitForPort(daemonPort);

  // A repository with a submodule fetched through the daemon.
  const subWork = join(root, 'subwork');
  await mkdir(subWork);
  sh('git', ['init', '-q', '-b', 'main'], subWork);
  await writeFile(join(subWork, 'lib.txt'), 'from-submodule\n');
  sh('git', ['add', '.'], subWork);
  sh('git', ['commit', '-q', '-m', 'lib'], subWork);
  sh('git', ['clone', '-q', '--bare', subWork, join(repos, 'lib.git')], root);
  const superWork = join(root, 'superwork');
  await mkdir(superWork);
  sh('git', ['init', '-q', '-b', 'main'], superWork);
  await writeFile(join(superWork, 'Dockerfile'), 'FROM scratch\n');
  sh('git', ['add', '.'], superWork);
  sh('git', ['submodule', '-q', 'add', `git://127.0.0.1:${daemonPort}/lib.git`, 'lib'], superWork);
  sh('git', ['commit', '-q', '-m', 'with submodule'], superWork);
  sh('git', ['clone', '-q', '--bare', superWork, join(repos, 'super.git')], root);

  // Tarballs made by GNU tar.
  const src = join(root, 'tarsrc');
  await mkdir(join(src, 'app'), { recursive: true });
  await writeFile(join(src, 'Dockerfile'), 'FROM scratch\n');
  await writeFile(join(src, 'app', 'main.txt'), 'from-tar\n');
  sh('tar', ['-cf', join(root, 'ctx.tar'), '-C', src, '.'], root);
  sh('tar', ['-czf', join(root, 'ctx.tar.gz'), '-C', src, '.'], root);
  sh('tar', ['-czf', join(root, 'ctx.tgz'), '-C', src, '.'], root);
  // A malicious one: `../evil` kept verbatim by -P.
  const evilSrc = join(root, 'evil', 'inner');
  await mkdir(evilSrc, { recursive: true });
  await writeFile(join(root, 'evil', 'evil'), 'pwned\n');
  await writeFile(join(evilSrc, 'ok.txt'), 'ok\n');
  sh('tar', ['-cPf', join(root, 'evil.tar'), '../evil', 'ok.txt'], evilSrc);
  assert.match(sh('tar', ['-tPf', join(root, 'evil.tar')], root), /^\.\.\/evil$/m);

  const files = join(root, 'files');
  await mkdir(files);
  await writeFile(join(files, 'ctx.tar.gz'), await readFile(join(root, 'ctx.tar.gz')));
  httpServer = await startHttp(files);
  const addr = httpServer.address();
  httpPort = typeof addr === 'object' && addr ? addr.port : 0;
  await writeFile(join(root, 'token'), `${TOKEN}\n`);
  await writeFile(join(root, 'badtoken'), 'wrong-token-123\n');
});

after(async () => {
  daemon?.kill();
  httpServer?.closeAllConnections();
  await new Promise((r) => httpServer?.close(r));
  await rm(root, { recursive: true, force: true });
});

let seq = 0;
function opts(context: string, more: Partial<BuildOptions> = {}): BuildOptions {
  return defaultBuildOptions({ context, ...more });
}
function work(): string {
  return join(root, `w${seq++}`);
}
async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected KilnError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected ${code}`);
}

describe('parseContext', () => {
  const cases: Array<[string, ContextSpec]> = [
    ['.', { kind: 'dir', path: '.' }],
    ['dir:///src', { kind: 'dir', path: '/src' }],
    ['tar://ctx.tar.gz', { kind: 'tar', path: 'ctx.tar.gz' }],
    ['/x/ctx.tgz', { kind: 'tar', path: '/x/ctx.tgz' }],
    ['-', { kind: 'stdin' }],
    ['tar://stdin', { kind: 'stdin' }],
    ['git://h/r.git', { kind: 'git', url: 'git://h/r.git' }],
    ['git://h/r.git#main:sub/dir', { kind: 'git', url: 'git://h/r.git', ref: 'main', subdir: 'sub/dir' }],
    [
      'git://github.com/o/r.git#refs/heads/main#abc123',
      { kind: 'git', url: 'https://github.com/o/r.git', ref: 'refs/heads/main', commit: 'abc123' },
    ],
    ['https://h/r.git#v1', { kind: 'git', url: 'https://h/r.git', ref: 'v1' }],
    ['https://h/r#:docker', { kind: 'git', url: 'https://h/r', subdir: 'docker' }],
    ['git@github.com:o/r.git#dev', { kind: 'git', url: 'git@github.com:o/r.git', ref: 'dev' }],
    ['https://h/ctx.tar.gz', { kind: 'url', url: 'https://h/ctx.tar.gz' }],
    ['http://h/download?id=3', { kind: 'url', url: 'http://h/download?id=3' }],
  ];
  for (const [input, want] of cases) {
    test(input, () => assert.deepEqual(parseContext(input), want));
  }
});

describe('local directory', () => {
  test('used in place, cleanup leaves it', async () => {
    const dir = join(root, 'tarsrc');
    const ctx = await materializeContext(opts(dir), work());
    assert.equal(ctx.dir, dir);
    await ctx.cleanup();
    assert.ok(existsSync(join(dir, 'Dockerfile')));
  });
  test('contextSubPath applied', async () => {
    const ctx = await materializeContext(opts(join(root, 'tarsrc'), { contextSubPath: 'app' }), work());
    assert.equal(await readFile(join(ctx.dir, 'main.txt'), 'utf8'), 'from-tar\n');
  });
  test('missing directory and missing sub-path name the path', async () => {
    await rejectsWith(materializeContext(opts(join(root, 'nope')), work()), 'CONTEXT_NOT_FOUND', /nope/);
    await rejectsWith(
      materializeContext(opts(join(root, 'tarsrc'), { contextSubPath: 'missing-sub' }), work()),
      'CONTEXT_NOT_FOUND',
      /missing-sub/,
    );
  });
});

describe('tar contexts', () => {
  for (const form of [
    'tar://{root}/ctx.tar',
    'tar://{root}/ctx.tar.gz',
    '{root}/ctx.tar.gz',
    '{root}/ctx.tgz',
  ]) {
    test(form, async () => {
      const wd = work();
      const ctx = await materializeContext(opts(form.replace('{root}', root)), wd);
      assert.equal(ctx.dir, join(wd, 'context'));
      assert.equal(await readFile(join(ctx.dir, 'app', 'main.txt'), 'utf8'), 'from-tar\n');
      assert.ok(existsSync(join(ctx.dir, 'Dockerfile')));
      await ctx.cleanup();
      assert.ok(!existsSync(ctx.dir));
    });
  }
  test('contextSubPath inside a tar', async () => {
    const ctx = await materializeContext(opts(`tar://${root}/ctx.tar.gz`, { contextSubPath: 'app' }), work());
    assert.deepEqual(await readdir(ctx.dir), ['main.txt']);
    await ctx.cleanup();
  });
  test('../evil lands nowhere outside the context', async () => {
    const wd = work();
    const ctx = await materializeContext(opts(`tar://${root}/evil.tar`), wd);
    assert.equal(await readFile(join(ctx.dir, 'ok.txt'), 'utf8'), 'ok\n');
    assert.ok(!existsSync(join(wd, 'evil')), 'nothing written next to the context');
    assert.deepEqual((await readdir(wd)).sort(), ['context']);
    await ctx.cleanup();
  });
  test('stdin (`-` and tar://stdin)', async () => {
    const script = [
      `import { materializeContext } from ${JSON.stringify(join(process.cwd(), 'src/context/fetch.ts'))};`,
      `import { defaultBuildOptions } from ${JSON.stringify(join(process.cwd(), 'src/options.ts'))};`,
      `import { readFileSync } from 'node:fs';`,
      `const ctx = await materializeContext(defaultBuildOptions({ context: process.argv[2] }), process.argv[3]);`,
      `process.stdout.write(readFileSync(ctx.dir + '/app/main.txt', 'utf8'));`,
      `await ctx.cleanup();`,
    ].join('\n');
    const file = join(root, 'stdin-probe.mts');
    await writeFile(file, script);
    for (const form of ['-', 'tar://stdin']) {
      const wd = work();
      const out = execFileSync(process.execPath, ['--import', 'tsx', file, form, wd], {
        input: await readFile(join(root, 'ctx.tar.gz')),
        encoding: 'utf8',
      });
      assert.equal(out, 'from-tar\n', form);
      assert.ok(!existsSync(join(wd, 'context')), 'cleaned up');
    }
  });
  test('plan reads the Dockerfile from a tar context and cleans up', async () => {
    const wd = work();
    const plan = await planForOptions(opts(`tar://${root}/ctx.tar.gz`, { workDir: wd }));
    assert.equal(plan.stages.length, 1);
    assert.ok(!existsSync(wd) || (await readdir(wd)).length === 0, 'plan context removed');
  });
  test('missing tar', async () => {
    await rejectsWith(
      materializeContext(opts(`tar://${root}/none.tar`), work()),
      'CONTEXT_NOT_FOUND',
      /none\.tar/,
    );
  });
  test('not a tar', async () => {
    const wd = work();
    await rejectsWith(materializeContext(opts(`tar://${join(root, 'token')}`), wd), 'CONTEXT_BAD_TAR');
    assert.ok(!existsSync(join(wd, 'context')), 'cleaned up after failure');
  });
});

describe('git over git://', () => {
  const url = (): string => `git://127.0.0.1:${daemonPort}/repo.git`;
  const cases: Array<{
    name: string;
    frag: string;
    which?: string;
    inner?: string;
    more?: Partial<BuildOptions>;
  }> = [
    { name: 'default branch', frag: '', which: 'main-B\n', inner: 'sub-A\n' },
    { name: '#branch', frag: '#feature', which: 'feature-C\n', inner: 'sub-C\n' },
    { name: '#refs/heads/branch', frag: '#refs/heads/feature', which: 'feature-C\n' },
    { name: '#tag', frag: '#v1', which: 'main-A\n' },
    { name: '#sha (not a tip)', frag: '#{A}', which: 'main-A\n' },
    { name: '#sha (a tip)', frag: '#{C}', which: 'feature-C\n' },
    { name: '#branch:subdir', frag: '#feature:sub', inner: 'sub-C\n' },
    { name: '#:subdir', frag: '#:sub', inner: 'sub-A\n' },
    { name: 'Kaniko #ref#sha', frag: '#refs/heads/main#{A}', which: 'main-A\n' },
    { name: '--git branch', frag: '', which: 'feature-C\n', more: { git: gitOpts({ branch: 'feature' }) } },
    { name: 'contextSubPath', frag: '#v1', inner: 'sub-A\n', more: { contextSubPath: 'sub' } },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const frag = c.frag.replace('{A}', shaA).replace('{C}', shaC);
      const wd = work();
      const ctx = await materializeContext(opts(url() + frag, c.more ?? {}), wd);
      const subdirMode = frag.includes(':') || c.more?.contextSubPath;
      if (c.which) assert.equal(await readFile(join(ctx.dir, 'which.txt'), 'utf8'), c.which);
      if (c.inner) {
        const p = subdirMode ? join(ctx.dir, 'inner.txt') : join(ctx.dir, 'sub', 'inner.txt');
        assert.equal(await readFile(p, 'utf8'), c.inner);
      }
      if (subdirMode) assert.ok(!existsSync(join(ctx.dir, 'which.txt')), 'only the subdir');
      assert.ok(!existsSync(join(wd, 'context', '.git')), '.git removed');
      assert.match(ctx.description, /^git git:\/\/127\.0\.0\.1/);
      await ctx.cleanup();
      assert.ok(!existsSync(join(wd, 'context')));
    });
  }
  test('abbreviated sha (no remote ref: full fetch fallback)', async () => {
    const { logger, lines } = memoryLogger('debug');
    const ctx = await materializeContext(opts(`${url()}#${shaA.slice(0, 10)}`), work(), logger);
    assert.equal(await readFile(join(ctx.dir, 'which.txt'), 'utf8'), 'main-A\n');
    assert.ok(ctx.description.endsWith(shaA), ctx.description);
    assert.ok(
      lines.some((l) => l.includes('fetching all refs')),
      lines.join('\n'),
    );
    await ctx.cleanup();
  });
  test('submodules only with recurseSubmodules', async () => {
    const u = `git://127.0.0.1:${daemonPort}/super.git`;
    const plain = await materializeContext(opts(u), work());
    assert.deepEqual(await readdir(join(plain.dir, 'lib')), []);
    await plain.cleanup();
    const rec = await materializeContext(opts(u, { git: gitOpts({ recurseSubmodules: true }) }), work());
    assert.equal(await readFile(join(rec.dir, 'lib', 'lib.txt'), 'utf8'), 'from-submodule\n');
    assert.ok(!existsSync(join(rec.dir, 'lib', '.git')), 'submodule .git removed');
    assert.ok(!existsSync(join(rec.dir, '.git')));
    await rec.cleanup();
  });
  test('description names the checked-out commit', async () => {
    const ctx = await materializeContext(opts(url()), work());
    assert.ok(ctx.description.endsWith(shaB), ctx.description);
    await ctx.cleanup();
  });
  test('unknown ref and missing subdir fail clearly', async () => {
    await rejectsWith(
      materializeContext(opts(`${url()}#no-such-branch`), work()),
      'GIT_FETCH_FAILED',
      /no-such-branch|couldn't find/i,
    );
    await rejectsWith(materializeContext(opts(`${url()}#main:nodir`), work()), 'CONTEXT_NOT_FOUND', /nodir/);
    await rejectsWith(
      materializeContext(opts(`git://127.0.0.1:${daemonPort}/other.git`), work()),
      'GIT_FETCH_FAILED',
      /other\.git/,
    );
  });
});

function gitOpts(over: Partial<BuildOptions['git']>): BuildOptions['git'] {
  return { recurseSubmodules: false, insecureSkipTls: false, ...over };
}

describe('git over http (git http-backend, Basic auth)', () => {
  const url = (): string => `http://127.0.0.1:${httpPort}/repo.git`;
  test('token file: #branch:subdir', async () => {
    const { logger, lines } = memoryLogger('debug');
    const ctx = await materializeContext(
      opts(`${url()}#feature:sub`, { git: gitOpts({ tokenFile: join(root, 'token') }) }),
      work(),
      logger,
    );
    assert.equal(await readFile(join(ctx.dir, 'inner.txt'), 'utf8'), 'sub-C\n');
    assert.ok(lines.length > 0);
    assert.ok(!lines.join('\n').includes(TOKEN), 'token never logged');
    await ctx.cleanup();
  });
  test('token file: #sha and #tag', async () => {
    for (const [frag, want] of [
      [`#${shaA}`, 'main-A\n'],
      ['#v1', 'main-A\n'],
      [`#${shaB}`, 'main-B\n'],
    ] as const) {
      const ctx = await materializeContext(
        opts(url() + frag, { git: gitOpts({ tokenFile: join(root, 'token'), tokenUser: USER }) }),
        work(),
      );
      assert.equal(await readFile(join(ctx.dir, 'which.txt'), 'utf8'), want, frag);
      await ctx.cleanup();
    }
  });
  test('GIT_USERNAME/GIT_PASSWORD env', async () => {
    process.env.GIT_USERNAME = USER;
    process.env.GIT_PASSWORD = TOKEN;
    try {
      const ctx = await materializeContext(opts(`${url()}#main`), work());
      assert.equal(await readFile(join(ctx.dir, 'which.txt'), 'utf8'), 'main-B\n');
      await ctx.cleanup();
    } finally {
      delete process.env.GIT_USERNAME;
      delete process.env.GIT_PASSWORD;
    }
  });
  test('credentials in the URL are moved out of it', async () => {
    const u = `http://${USER}:${TOKEN}@127.0.0.1:${httpPort}/repo.git#v1`;
    const ctx = await materializeContext(opts(u), work());
    assert.equal(await readFile(join(ctx.dir, 'which.txt'), 'utf8'), 'main-A\n');
    assert.ok(!ctx.description.includes(TOKEN), ctx.description);
    await ctx.cleanup();
  });
  test('wrong token fails with a clear error that does not contain it', async () => {
    const wd = work();
    const { logger, lines } = memoryLogger('debug');
    const err = await rejectsWith(
      materializeContext(
        opts(`${url()}#main`, { git: gitOpts({ tokenFile: join(root, 'badtoken') }) }),
        wd,
        logger,
      ),
      'GIT_AUTH_FAILED',
      /refused the credentials/,
    );
    const all = `${err.message}\n${err.hint ?? ''}\n${lines.join('\n')}`;
    assert.ok(!all.includes('wrong-token-123'), all);
    assert.ok(!all.includes(Buffer.from(`${USER}:wrong-token-123`).toString('base64')), all);
    assert.match(err.message, /127\.0\.0\.1/);
    assert.ok(!existsSync(join(wd, 'context')), 'cleaned up after failure');
  });
  test('no credentials fails as auth', async () => {
    await rejectsWith(
      materializeContext(opts(`${url()}#main`), work()),
      'GIT_AUTH_FAILED',
      /requires credentials/,
    );
  });
  test('missing token file', async () => {
    await rejectsWith(
      materializeContext(opts(url(), { git: gitOpts({ tokenFile: join(root, 'no-token') }) }), work()),
      'GIT_TOKEN_FILE',
    );
  });
});

describe('http tarball', () => {
  test('downloaded and extracted', async () => {
    const ctx = await materializeContext(opts(`http://127.0.0.1:${httpPort}/files/ctx.tar.gz`), work());
    assert.equal(await readFile(join(ctx.dir, 'app', 'main.txt'), 'utf8'), 'from-tar\n');
    await ctx.cleanup();
  });
  test('redirect followed, contextSubPath applied', async () => {
    const wd = work();
    const ctx = await materializeContext(
      opts(`http://127.0.0.1:${httpPort}/redirect/ctx.tar.gz`, { contextSubPath: 'app' }),
      wd,
    );
    assert.deepEqual(await readdir(ctx.dir), ['main.txt']);
    assert.ok(!existsSync(join(wd, 'context.download')), 'download removed');
    await ctx.cleanup();
  });
  test('404', async () => {
    await rejectsWith(
      materializeContext(opts(`http://127.0.0.1:${httpPort}/files/missing.tar.gz`), work()),
      'CONTEXT_DOWNLOAD_FAILED',
      /HTTP 404/,
    );
  });
});
