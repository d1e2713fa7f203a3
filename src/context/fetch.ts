/**
 * Turns any build context Kaniko accepts into a local directory:
 *
 * - a directory (or `dir://path`) is used in place, never copied;
 * - `tar://path`, `tar://stdin`, `-`, or a path ending .tar/.tar.gz/.tgz/.tar.zst is extracted with the
 *   layer extractor (which keeps every entry inside the target, whatever `..` or symlinks it holds);
 * - git (`git://`, `ssh://`, `git@host:repo`, an http(s) URL ending `.git` or carrying a `#fragment`) is
 *   fetched with the git CLI, shallow when it can be, and its `.git` removed;
 * - any other http(s) URL is downloaded (redirects followed, streamed to disk) and extracted as a tarball.
 *
 * Git fragments: Docker's `#ref:subdir` and Kaniko's `#refs/heads/main#<commit>`; `ref` may be a branch,
 * a tag, a full ref or a commit SHA. Credentials (token file, GIT_TOKEN, GIT_USERNAME/GIT_PASSWORD, or
 * user:password in the URL) go to git as an `Authorization` header through GIT_CONFIG_* environment
 * variables scoped to the repository's origin: never in argv, in the URL git stores, or in a log line.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import type { BuildOptions } from '../options.ts';
import { extractLayer } from '../fs/extract.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import { firstLine, runCommand } from '../util/command.ts';

export interface MaterializedContext {
  /** Local directory holding the context (contextSubPath and any git subdir already applied). */
  dir: string;
  /** Removes what was fetched or extracted; a no-op for a local directory. */
  cleanup(): Promise<void>;
  /** One line for logs, free of credentials. */
  description: string;
}

export type ContextSpec =
  | { kind: 'dir'; path: string }
  | { kind: 'tar'; path: string }
  | { kind: 'stdin' }
  | { kind: 'git'; url: string; ref?: string; commit?: string; subdir?: string }
  | { kind: 'url'; url: string };

const TAR_SUFFIX = /\.(tar|tar\.gz|tgz|tar\.zst|tar\.zstd)$/i;
const SHA_RE = /^[0-9a-f]{40}([0-9a-f]{24})?$/i;
/** Hosts that no longer serve the unauthenticated git:// protocol; Kaniko users mean https there. */
const HTTPS_ONLY_GIT_HOSTS = new Set(['github.com', 'gitlab.com', 'bitbucket.org']);
const MAX_REDIRECTS = 10;

/** Classifies a context string (no I/O). */
export function parseContext(context: string): ContextSpec {
  if (context === '-' || context === 'tar://stdin') return { kind: 'stdin' };
  if (context.startsWith('tar://')) return { kind: 'tar', path: context.slice('tar://'.length) };
  if (context.startsWith('dir://')) return { kind: 'dir', path: context.slice('dir://'.length) };
  if (isGitContext(context)) return parseGit(context);
  if (/^https?:\/\//i.test(context)) return { kind: 'url', url: context };
  if (TAR_SUFFIX.test(context)) return { kind: 'tar', path: context };
  return { kind: 'dir', path: context };
}

function isGitContext(c: string): boolean {
  if (/^(git|ssh|git\+ssh|git\+https?):\/\//i.test(c)) return true;
  if (/^[\w.-]+@[\w.-]+:/.test(c)) return true; // scp-like git@host:org/repo
  if (/^github\.com\//i.test(c)) return true;
  if (/^https?:\/\//i.test(c)) {
    const hash = c.indexOf('#');
    const base = hash < 0 ? c : c.slice(0, hash);
    return hash >= 0 || /\.git\/?$/i.test(base.split('?')[0]!);
  }
  return false;
}

function parseGit(c: string): ContextSpec {
  const [base, ...frags] = c.split('#');
  let url = base!;
  if (/^github\.com\//i.test(url)) url = `https://${url}`;
  url = url.replace(/^git\+(https?|ssh):\/\//i, '$1://');
  if (/^git:\/\//i.test(url)) {
    const method = process.env.GIT_PULL_METHOD; // Kaniko: git:// means GIT_PULL_METHOD (https) there
    const host = url.slice('git://'.length).split(/[/:]/)[0]!.toLowerCase();
    if (method) url = `${method}://${url.slice('git://'.length)}`;
    else if (HTTPS_ONLY_GIT_HOSTS.has(host)) url = `https://${url.slice('git://'.length)}`;
  }
  const spec: { kind: 'git'; url: string; ref?: string; commit?: string; subdir?: string } = {
    kind: 'git',
    url,
  };
  const first = frags[0] ?? '';
  if (first) {
    const colon = first.indexOf(':');
    const ref = colon < 0 ? first : first.slice(0, colon);
    const subdir = colon < 0 ? '' : first.slice(colon + 1);
    if (ref) spec.ref = ref;
    if (subdir) spec.subdir = subdir;
  }
  if (frags[1]) spec.commit = frags[1];
  return spec;
}

/** The URL with any user:password removed, safe for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

function notFound(what: string, hint: string): KilnError {
  return new KilnError('context', 'CONTEXT_NOT_FOUND', what, { hint });
}

/** Joins `sub` under `root`, refusing a path that leaves it, and checks it is a directory. */
async function applySubPath(root: string, sub: string | undefined, label: string): Promise<string> {
  if (!sub) return root;
  const dir = resolve(root, sub.replace(/^\/+/, ''));
  const rel = relative(root, dir);
  if (rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) {
    throw new KilnError('context', 'CONTEXT_NOT_FOUND', `context sub-path ${sub} leaves the ${label}`, {
      hint: 'pass a path relative to the context root, without ..',
    });
  }
  const st = await stat(dir).catch(() => null);
  if (!st?.isDirectory()) {
    throw notFound(
      `context sub-path ${sub} is not a directory in the ${label}`,
      'check --context-sub-path (or the :subdir of the git fragment)',
    );
  }
  return dir;
}

export async function materializeContext(
  opts: BuildOptions,
  workDir: string,
  logger?: Logger,
): Promise<MaterializedContext> {
  const spec = parseContext(opts.context);
  if (spec.kind === 'dir') {
    const root = resolve(spec.path);
    const st = await stat(root).catch(() => null);
    if (!st?.isDirectory()) {
      throw notFound(
        `build context ${root} is not a directory`,
        'pass --context <dir>, tar://<file>, a git URL or an https tarball URL',
      );
    }
    const dir = await applySubPath(root, opts.contextSubPath, `context ${root}`);
    return { dir, cleanup: async () => undefined, description: `directory ${dir}` };
  }

  workDir = resolve(workDir);
  const target = join(workDir, 'context');
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  const cleanup = async (): Promise<void> => {
    await rm(target, { recursive: true, force: true }).catch(() => undefined);
    await rm(`${target}.download`, { force: true }).catch(() => undefined);
    await rmdir(workDir).catch(() => undefined);
  };
  try {
    let root = target;
    let description: string;
    switch (spec.kind) {
      case 'stdin':
        await extractTar(process.stdin, target, 'tar from stdin');
        description = 'tar from stdin';
        break;
      case 'tar': {
        const file = resolve(spec.path);
        const st = await stat(file).catch(() => null);
        if (!st?.isFile())
          throw notFound(`build context tar ${file} does not exist`, 'check the tar:// path');
        await extractTar(createReadStream(file), target, `tar ${file}`);
        description = `tar ${file}`;
        break;
      }
      case 'url': {
        const file = `${target}.download`;
        const shown = redactUrl(spec.url);
        await download(spec.url, file, logger);
        await extractTar(createReadStream(file), target, `tarball ${shown}`);
        await rm(file, { force: true });
        description = `tarball ${shown}`;
        break;
      }
      case 'git': {
        const commit = await gitFetch(spec, opts, target, logger);
        root = await applySubPath(target, spec.subdir, `git repository ${redactUrl(spec.url)}`);
        description = `git ${redactUrl(spec.url)}${spec.ref ? `#${spec.ref}` : ''} at ${commit}`;
        break;
      }
    }
    const dir = await applySubPath(root, opts.contextSubPath, description);
    logger?.info(`build context: ${description}`);
    return { dir, cleanup, description };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

async function extractTar(stream: Readable, target: string, label: string): Promise<void> {
  try {
    await extractLayer(stream, target);
  } catch (e) {
    throw new KilnError('context', 'CONTEXT_BAD_TAR', `cannot extract ${label}: ${(e as Error).message}`, {
      hint: 'the context must be a tar archive (plain, gzip or zstd) whose entries stay inside it',
      cause: e,
    });
  }
}

// --- https tarballs --------------------------------------------------------------------------------

async function download(url: string, file: string, logger?: Logger): Promise<void> {
  const shown = redactUrl(url);
  let current: URL;
  try {
    current = new URL(url);
  } catch (e) {
    throw new KilnError('usage', 'CONTEXT_BAD_URL', `build context URL ${shown} is invalid`, {
      hint: 'pass a full http(s) URL',
      cause: e,
    });
  }
  const headers: Record<string, string> = {};
  if (current.username || current.password) {
    const auth = Buffer.from(
      `${decodeURIComponent(current.username)}:${decodeURIComponent(current.password)}`,
    ).toString('base64');
    logger?.addSecret(auth);
    logger?.addSecret(decodeURIComponent(current.password));
    headers.authorization = `Basic ${auth}`;
    current.username = '';
    current.password = '';
  }
  const origin = current.origin;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    let res;
    try {
      res = await request(current, {
        method: 'GET',
        // Credentials only go to the origin they were given for.
        headers: current.origin === origin ? headers : {},
      });
    } catch (e) {
      throw new KilnError(
        'context',
        'CONTEXT_DOWNLOAD_FAILED',
        `cannot download ${shown}: ${(e as Error).message}`,
        {
          hint: 'check the URL and that the build host can reach it',
          cause: e,
        },
      );
    }
    if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
      await res.body.dump();
      current = new URL(String(res.headers.location), current);
      logger?.debug(`build context: redirected to ${redactUrl(current.href)}`);
      continue;
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new KilnError(
        'context',
        'CONTEXT_DOWNLOAD_FAILED',
        `cannot download ${shown}: HTTP ${res.statusCode}`,
        {
          hint:
            res.statusCode === 401 || res.statusCode === 403
              ? 'the server wants credentials'
              : 'check the URL',
        },
      );
    }
    await pipeline(res.body, createWriteStream(file));
    return;
  }
  throw new KilnError('context', 'CONTEXT_DOWNLOAD_FAILED', `cannot download ${shown}: too many redirects`, {
    hint: 'check the URL',
  });
}

// --- git ---------------------------------------------------------------------------------------------

interface GitRun {
  code: number;
  stdout: string;
  stderr: string;
}

interface GitAuth {
  /** Extra config entries passed through GIT_CONFIG_COUNT/KEY/VALUE (kept out of argv). */
  config: Array<[string, string]>;
  secrets: string[];
}

async function gitCredentials(opts: BuildOptions): Promise<{ user: string; password: string } | undefined> {
  if (opts.git.tokenFile) {
    let token: string;
    try {
      token = (await readFile(opts.git.tokenFile, 'utf8')).trim();
    } catch (e) {
      throw new KilnError('usage', 'GIT_TOKEN_FILE', `cannot read git token file ${opts.git.tokenFile}`, {
        hint: 'check --git token-file=<path>',
        cause: e,
      });
    }
    return { user: opts.git.tokenUser || process.env.GIT_USERNAME || 'oauth2', password: token };
  }
  if (process.env.GIT_TOKEN) return { user: process.env.GIT_TOKEN, password: '' }; // as Kaniko does
  if (process.env.GIT_USERNAME || process.env.GIT_PASSWORD) {
    return { user: process.env.GIT_USERNAME ?? '', password: process.env.GIT_PASSWORD ?? '' };
  }
  return undefined;
}

/** Moves user:password out of an http(s) URL; returns the bare URL and the auth config. */
async function gitAuth(rawUrl: string, opts: BuildOptions): Promise<{ url: string; auth: GitAuth }> {
  const auth: GitAuth = { config: [], secrets: [] };
  if (!/^https?:\/\//i.test(rawUrl)) {
    if (opts.git.insecureSkipTls) auth.config.push(['http.sslVerify', 'false']);
    return { url: rawUrl, auth };
  }
  const u = new URL(rawUrl);
  let creds = await gitCredentials(opts);
  if (u.username || u.password) {
    creds ??= { user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
    u.username = '';
    u.password = '';
  }
  if (opts.git.insecureSkipTls) auth.config.push([`http.${u.origin}/.sslVerify`, 'false']);
  if (creds) {
    const basic = Buffer.from(`${creds.user}:${creds.password}`).toString('base64');
    // Scoped to the origin: submodules on other hosts never see the token.
    auth.config.push([`http.${u.origin}/.extraHeader`, `Authorization: Basic ${basic}`]);
    auth.secrets.push(basic, creds.password, ...(creds.password ? [] : [creds.user]));
  }
  return { url: u.href, auth };
}

function redactAll(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 3) out = out.split(s).join('***');
  return out;
}

async function runGit(args: string[], cwd: string, auth: GitAuth): Promise<GitRun> {
  // Appended after any GIT_CONFIG_* entries the caller's environment already holds.
  const base = Number.parseInt(process.env.GIT_CONFIG_COUNT ?? '0', 10) || 0;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_COUNT: String(base + auth.config.length),
  };
  auth.config.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${base + i}`] = k;
    env[`GIT_CONFIG_VALUE_${base + i}`] = v;
  });
  const r = await runCommand('git', args, { cwd, env });
  if (r.missing)
    throw new KilnError('context', 'GIT_NOT_FOUND', `cannot run git: ${firstLine(r.stderr)}`, {
      hint: 'install git on the build host to use git contexts',
    });
  return { code: r.code, stdout: r.stdout, stderr: redactAll(r.stderr, auth.secrets) };
}

function gitError(what: string, url: string, r: GitRun, hasCreds = false): KilnError {
  const lines = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const detail = (lines.filter((l) => /^(fatal|error):/.test(l)).pop() ?? lines.pop() ?? `exit ${r.code}`)
    .replace(/^(fatal|error):\s*/, '')
    .replace(/[a-z][a-z0-9+.-]*:\/\/[^/\s@']*@/gi, (m) => redactUrl(m));
  const authFailed =
    /authentication failed|could not read (username|password)|HTTP (401|403)|403 Forbidden/i.test(r.stderr);
  return new KilnError(
    'context',
    authFailed ? 'GIT_AUTH_FAILED' : 'GIT_FETCH_FAILED',
    authFailed
      ? `git ${what} ${url} failed: ${hasCreds ? 'the server refused the credentials' : 'the server requires credentials'} (${detail})`
      : `git ${what} ${url} failed: ${detail}`,
    {
      hint: authFailed
        ? 'the git server refused the credentials: check --git token-file (and token-user) or GIT_USERNAME/GIT_PASSWORD/GIT_TOKEN'
        : 'check the repository URL and the ref (branch, tag or commit) in the #fragment',
    },
  );
}

/**
 * ADD <git URL> [--keep-git-dir]: the repository (ref, subdir from the fragment) checked out into
 * `dir`, with the build's git credentials. Returns the directory to copy from.
 */
export async function fetchGitSource(
  url: string,
  dir: string,
  opts: BuildOptions,
  keepGitDir: boolean,
  logger?: Logger,
): Promise<string> {
  const spec = parseGit(url);
  if (spec.kind !== 'git') throw notFound(`${url} is not a git URL`, 'write https://host/repo.git#ref');
  await mkdir(dir, { recursive: true });
  await gitFetch(spec, opts, dir, logger, keepGitDir);
  return applySubPath(dir, spec.subdir, `git repository ${redactUrl(spec.url)}`);
}

async function gitFetch(
  spec: { url: string; ref?: string; commit?: string },
  opts: BuildOptions,
  dir: string,
  logger?: Logger,
  keepGitDir = false,
): Promise<string> {
  const { url, auth } = await gitAuth(spec.url, opts);
  for (const s of auth.secrets) logger?.addSecret(s);
  const shown = redactUrl(url);
  const hasCreds = auth.secrets.length > 0;
  let ref = spec.ref ?? opts.git.branch;
  let commit = spec.commit ?? opts.git.revision;
  if (ref && !commit && SHA_RE.test(ref)) {
    commit = ref;
    ref = undefined;
  }
  const git = async (args: string[]): Promise<GitRun> => runGit(args, dir, auth);
  const must = async (what: string, args: string[]): Promise<GitRun> => {
    const r = await git(args);
    if (r.code !== 0) throw gitError(what, shown, r, hasCreds);
    return r;
  };
  await must('init', ['init', '-q']);
  await must('remote add', ['remote', 'add', 'origin', url]);
  logger?.debug(`git: fetching ${shown}${ref ? ` ref ${ref}` : ''}${commit ? ` commit ${commit}` : ''}`);

  let checkout = 'FETCH_HEAD';
  if (commit) {
    const shallow = await git(['fetch', '-q', '--depth', '1', 'origin', commit]);
    if (shallow.code !== 0) {
      if (/authentication failed|could not read (username|password)/i.test(shallow.stderr)) {
        throw gitError('fetch', shown, shallow, hasCreds);
      }
      logger?.debug(`git: commit ${commit} not fetchable directly; fetching all refs`);
      await must('fetch', [
        'fetch',
        '-q',
        'origin',
        ref ? ref : '+refs/heads/*:refs/remotes/origin/*',
        '+refs/tags/*:refs/tags/*',
      ]);
      checkout = commit;
    }
  } else {
    const r = await git(['fetch', '-q', '--depth', '1', 'origin', ref ?? 'HEAD']);
    if (r.code !== 0) {
      // An abbreviated commit (`#1a2b3c4`) is no ref the server knows: fetch everything, then check it out.
      if (!ref || !/^[0-9a-f]{7,39}$/i.test(ref) || !/couldn't find remote ref/i.test(r.stderr)) {
        throw gitError('fetch', shown, r, hasCreds);
      }
      logger?.debug(`git: ${ref} is no remote ref; fetching all refs to find it as a commit`);
      await must('fetch', [
        'fetch',
        '-q',
        'origin',
        '+refs/heads/*:refs/remotes/origin/*',
        '+refs/tags/*:refs/tags/*',
      ]);
      checkout = ref;
      commit = ref;
    }
  }
  await must('checkout', ['-c', 'advice.detachedHead=false', 'checkout', '-q', '--detach', checkout]);
  const head = (await must('rev-parse', ['rev-parse', 'HEAD'])).stdout.trim();
  if (commit && !head.toLowerCase().startsWith(commit.toLowerCase())) {
    throw new KilnError(
      'context',
      'GIT_FETCH_FAILED',
      `git ${shown}: checked out ${head}, wanted ${commit}`,
      {
        hint: 'check the commit in the #fragment',
      },
    );
  }
  if (opts.git.recurseSubmodules) {
    await must('submodule update', ['submodule', 'update', '--init', '--recursive', '--depth', '1']);
    const list = await must('submodule foreach', [
      'submodule',
      'foreach',
      '--quiet',
      '--recursive',
      'echo "$displaypath"',
    ]);
    for (const p of list.stdout.split('\n').filter(Boolean)) {
      await rm(join(dir, p, '.git'), { recursive: true, force: true });
    }
  }
  if (!keepGitDir) await rm(join(dir, '.git'), { recursive: true, force: true });
  return head;
}
