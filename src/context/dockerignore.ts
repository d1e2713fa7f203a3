/**
 * `.dockerignore` with Docker's semantics: parsing follows moby/patternmatcher/ignorefile.ReadAll
 * plus patternmatcher.New, matching follows patternmatcher.MatchesOrParentMatches.
 *
 * Differences from Docker, all in corners nobody relies on (kept deliberately small):
 * - Docker turns a pattern into a Go regexp; we translate that same regexp to a JS one. An escaped
 *   letter (`\d`, `\w`, `\n`, ...) keeps its Go-regexp meaning where JS agrees; escapes Go would
 *   reject at match time (`\q`, `\x..`, `\p{..}`, octal) are reported as a bad pattern when loaded.
 *   POSIX classes inside brackets (`[[:alpha:]]`) are not supported (the `[` is literal).
 * - Patterns of the form `**<rest>` (Docker's "suffixMatch" fast path, a plain string suffix test
 *   there) are matched with the regexp Docker builds for them, i.e. `**∕.foo` does not match
 *   `bar.foo`. Exact and prefix fast paths are kept as Docker has them.
 * - As in Docker (Go's filepath.Match syntax), `[!a]` is NOT a negated class: only `[^a]` negates.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { KilnError } from '../util/errors.ts';

export interface IgnorePattern {
  /** Cleaned pattern without the leading `!`. */
  pattern: string;
  /** `!pattern`: re-includes what earlier patterns excluded. */
  exclusion: boolean;
  /** Where it came from, for messages (absent for patterns built in code). */
  file?: string;
  line?: number;
}

/** Go's path.Clean (filepath.Clean on Unix). */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(seg);
  }
  const joined = out.join('/');
  if (rooted) return '/' + joined;
  return joined === '' ? '.' : joined;
}

function badPattern(file: string, line: number, pattern: string, why: string): KilnError {
  return new KilnError(
    'context',
    'BAD_DOCKERIGNORE',
    `${file}:${line}: invalid .dockerignore pattern ${JSON.stringify(pattern)}: ${why}`,
    {
      hint: 'fix or remove the pattern; a literal [ ] * ? or \\ must be escaped with a backslash',
      position: { file, line },
    },
  );
}

/**
 * ReadAll then New: comments (`#` in column one, checked before trimming), whitespace trimmed,
 * blank lines skipped, `!` exceptions, filepath.Clean, a leading `/` dropped (a lone `/` stays),
 * and each pattern syntax-checked the way filepath.Match(p, ".") does.
 */
export function parseDockerignore(text: string, file: string): IgnorePattern[] {
  const out: IgnorePattern[] = [];
  // bufio.ScanLines: split on \n, drop one trailing \r; a final empty line is not a line.
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    let raw = lines[i]!;
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    if (i === 0 && raw.startsWith('\uFEFF')) raw = raw.slice(1);
    const lineNo = i + 1;
    if (raw.startsWith('#')) continue;
    let p = raw.trim();
    if (p === '') continue;
    const invert = p.startsWith('!');
    if (invert) p = p.slice(1).trim();
    if (p.length > 0) {
      p = cleanPath(p);
      if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
    }
    if (invert) p = '!' + p;
    // patternmatcher.New: trim, clean again (so `!/` becomes `!`), handle `!`, check syntax.
    p = cleanPath(p.trim());
    let exclusion = false;
    if (p.startsWith('!')) {
      if (p.length === 1) throw badPattern(file, lineNo, raw.trim(), 'illegal exclusion pattern "!"');
      exclusion = true;
      p = p.slice(1);
    }
    const err = goMatchSyntaxError(p) ?? regexpError(p);
    if (err) throw badPattern(file, lineNo, raw.trim(), err);
    out.push({ pattern: p, exclusion, file, line: lineNo });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Go filepath.Match syntax check (the error Match(p, ".") would return).

function scanChunk(pattern: string): { star: boolean; chunk: string; rest: string } {
  let star = false;
  while (pattern.startsWith('*')) {
    pattern = pattern.slice(1);
    star = true;
  }
  let inrange = false;
  let i = 0;
  scan: for (; i < pattern.length; i++) {
    switch (pattern[i]) {
      case '\\':
        if (i + 1 < pattern.length) i++;
        break;
      case '[':
        inrange = true;
        break;
      case ']':
        inrange = false;
        break;
      case '*':
        if (!inrange) break scan;
        break;
    }
  }
  return { star, chunk: pattern.slice(0, i), rest: pattern.slice(i) };
}

/** getEsc: one (possibly escaped) class character; returns the remaining chunk or an error. */
function getEsc(chunk: string): string | { err: string } {
  if (chunk.length === 0) return { err: 'unterminated character class' };
  if (chunk[0] === '-' || chunk[0] === ']') return { err: `unexpected "${chunk[0]}" in character class` };
  if (chunk[0] === '\\') {
    chunk = chunk.slice(1);
    if (chunk.length === 0) return { err: 'unterminated character class' };
  }
  const cp = chunk.codePointAt(0)!;
  const rest = chunk.slice(cp > 0xffff ? 2 : 1);
  if (rest.length === 0) return { err: 'unterminated character class' };
  return rest;
}

function checkChunk(chunk: string): string | null {
  while (chunk.length > 0) {
    const c = chunk[0];
    if (c === '[') {
      chunk = chunk.slice(1);
      if (chunk.startsWith('^')) chunk = chunk.slice(1);
      let nrange = 0;
      for (;;) {
        if (chunk.startsWith(']') && nrange > 0) {
          chunk = chunk.slice(1);
          break;
        }
        const lo = getEsc(chunk);
        if (typeof lo !== 'string') return lo.err;
        chunk = lo;
        if (chunk[0] === '-') {
          const hi = getEsc(chunk.slice(1));
          if (typeof hi !== 'string') return hi.err;
          chunk = hi;
        }
        nrange++;
      }
    } else if (c === '\\') {
      chunk = chunk.slice(1);
      if (chunk.length === 0) return 'trailing backslash';
      chunk = chunk.slice(1);
    } else {
      chunk = chunk.slice(1);
    }
  }
  return null;
}

function goMatchSyntaxError(pattern: string): string | null {
  while (pattern.length > 0) {
    const { star, chunk, rest } = scanChunk(pattern);
    if (star && chunk === '') return null;
    const err = checkChunk(chunk);
    if (err) return err;
    pattern = rest;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Pattern compilation: Docker's Pattern.compile, then Go regexp -> JS regexp.

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

const SHOULD_ESCAPE = '.+()|{}$';

/** Docker's regexp string (Go syntax) and the match type it would pick. */
function dockerRegexp(pattern: string): { re: string; type: MatchType } {
  let re = '^';
  let type: MatchType = 'exact';
  const chars = Array.from(pattern);
  for (let i = 0, k = 0; k < chars.length; i++) {
    const ch = chars[k++]!;
    if (ch === '*') {
      if (chars[k] === '*') {
        k++;
        if (chars[k] === '/') k++;
        if (k >= chars.length) {
          // Docker adds `.*` only in the regexp case; the prefix fast path never reads `re`, and
          // the suffix case (`**` alone) needs it to match everything.
          re += '.*';
          type = type === 'exact' ? 'prefix' : 'regexp';
        } else {
          re += '(.*/)?';
          type = 'regexp';
        }
        if (i === 0) type = 'suffix';
      } else {
        re += '[^/]*';
        type = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      type = 'regexp';
    } else if (SHOULD_ESCAPE.includes(ch)) {
      re += '\\' + ch;
    } else if (ch === '\\') {
      if (k < chars.length) {
        re += '\\' + chars[k++]!;
        type = 'regexp';
      } else {
        re += '\\';
      }
    } else if (ch === '[' || ch === ']') {
      re += ch;
      type = 'regexp';
    } else {
      re += ch;
    }
  }
  return { re: re + '$', type };
}

const PASS_ESCAPES = new Set(['d', 'D', 'w', 'W', 's', 'S', 'n', 't', 'r', 'f', 'v']);

function lit(ch: string): string {
  return `\\u{${ch.codePointAt(0)!.toString(16)}}`;
}

/** Translate a Go (RE2) regexp as Docker generates it into a JS `u` regexp source. */
function goToJs(go: string): string {
  const chars = Array.from(go);
  let out = '';
  let inClass = false;
  let classStart = false;
  for (let k = 0; k < chars.length; k++) {
    const ch = chars[k]!;
    if (ch === '\\') {
      const n = chars[++k];
      if (n === undefined) throw new Error('trailing backslash at end of expression');
      if (/^[0-9A-Za-z]$/.test(n)) {
        if (PASS_ESCAPES.has(n) || (!inClass && (n === 'b' || n === 'B'))) out += '\\' + n;
        else if (n === 'a') out += '\\x07';
        else if (n === 'A' && !inClass) out += '^';
        else if (n === 'z' && !inClass) out += '$';
        else throw new Error(`unsupported escape \\${n}`);
      } else if (n.codePointAt(0)! < 0x80) {
        out += lit(n);
      } else {
        throw new Error(`invalid escape \\${n}`);
      }
      classStart = false;
      continue;
    }
    if (inClass) {
      if (classStart && ch === '^') {
        out += '^';
        continue;
      }
      classStart = false;
      if (ch === ']') {
        out += ']';
        inClass = false;
      } else if (ch === '-') out += '-';
      else if (/[0-9A-Za-z]/.test(ch)) out += ch;
      else out += lit(ch);
      continue;
    }
    if (ch === '[') {
      out += '[';
      inClass = true;
      classStart = true;
      // Go: a `]` right after `[` or `[^` is literal.
      if (chars[k + 1] === ']') {
        out += '\\]';
        k++;
        classStart = false;
      } else if (chars[k + 1] === '^' && chars[k + 2] === ']') {
        out += '^\\]';
        k += 2;
        classStart = false;
      }
      continue;
    }
    if ('^$.*?()|'.includes(ch)) out += ch;
    else if (/[0-9A-Za-z]/.test(ch)) out += ch;
    else out += lit(ch);
  }
  if (inClass) throw new Error('missing closing ]');
  return out;
}

function regexpError(pattern: string): string | null {
  const { re, type } = dockerRegexp(pattern);
  if (type === 'exact' || type === 'prefix') return null;
  try {
    new RegExp(goToJs(re), 'u');
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

interface Compiled {
  exclusion: boolean;
  cleaned: string;
  test: (p: string) => boolean;
  dirs: string[];
}

function compile(p: IgnorePattern): Compiled {
  const cleaned = p.pattern;
  const { re, type } = dockerRegexp(cleaned);
  let test: (s: string) => boolean;
  if (type === 'exact') test = (s) => s === cleaned;
  else if (type === 'prefix') {
    const prefix = cleaned.slice(0, -2);
    test = (s) => s.startsWith(prefix);
  } else {
    let rx: RegExp;
    try {
      rx = new RegExp(goToJs(re), 'u');
    } catch (e) {
      throw new KilnError(
        'context',
        'BAD_DOCKERIGNORE',
        `${p.file ?? '.dockerignore'}:${p.line ?? 0}: invalid .dockerignore pattern ${JSON.stringify(cleaned)}: ${e instanceof Error ? e.message : String(e)}`,
        {
          hint: 'fix or remove the pattern',
          position: { file: p.file ?? '.dockerignore', line: p.line ?? 0 },
        },
      );
    }
    test = (s) => rx.test(s);
  }
  return { exclusion: p.exclusion, cleaned, test, dirs: cleaned.split('/') };
}

const WILDCARD = /[*?[\\]/;

/** Whether pattern `segment` (no `/`) could match the path segment `name`. Errs on the side of true. */
function segmentCouldMatch(segment: string, name: string): boolean {
  if (!WILDCARD.test(segment)) return segment === name;
  try {
    const { re } = dockerRegexp(segment);
    return new RegExp(goToJs(re), 'u').test(name);
  } catch {
    return true;
  }
}

export class IgnoreMatcher {
  private readonly compiled: Compiled[];
  readonly hasExclusions: boolean;

  constructor(patterns: readonly IgnorePattern[]) {
    this.compiled = patterns.map(compile);
    this.hasExclusions = this.compiled.some((c) => c.exclusion);
  }

  /** MatchesOrParentMatches: true when `relPath` (relative to the context, `/`-separated) is ignored. */
  matches(relPath: string): boolean {
    const file = cleanPath(relPath);
    const slash = file.lastIndexOf('/');
    const parentPath = slash < 0 ? '.' : slash === 0 ? '/' : file.slice(0, slash);
    const parentDirs = parentPath.split('/');
    let matched = false;
    for (const pat of this.compiled) {
      if (pat.exclusion !== matched) continue;
      let match = pat.test(file);
      if (!match && parentPath !== '.') {
        for (let i = 0; i < parentDirs.length; i++) {
          if (pat.test(parentDirs.slice(0, i + 1).join('/'))) {
            match = true;
            break;
          }
        }
      }
      if (match) matched = !pat.exclusion;
    }
    return matched;
  }

  /**
   * True when the directory is ignored and no exception pattern could re-include anything inside
   * it, so a walker need not descend. Docker's own check (a literal prefix test on `!` patterns)
   * misses wildcard exceptions such as `!*∕keep`; this one compares segment by segment and
   * treats `**` (or anything it cannot decide) as "might re-include".
   */
  canSkipDir(relDir: string): boolean {
    const dir = cleanPath(relDir);
    if (!this.matches(dir)) return false;
    if (!this.hasExclusions) return true;
    const dirSegs = dir.split('/');
    for (const pat of this.compiled) {
      if (!pat.exclusion) continue;
      if (exclusionMayReach(pat.dirs, dirSegs)) return false;
    }
    return true;
  }
}

/**
 * Could an exception with these segments match the directory, one of its ancestors or something
 * below it? (Ancestors count: `!a` un-ignores `a/b/c` through the parent rule.)
 */
function exclusionMayReach(patSegs: string[], dirSegs: string[]): boolean {
  const n = Math.min(patSegs.length, dirSegs.length);
  for (let i = 0; i < n; i++) {
    const seg = patSegs[i]!;
    if (seg.includes('**')) return true;
    if (!segmentCouldMatch(seg, dirSegs[i]!)) return false;
  }
  return true;
}

/**
 * Finds the ignore file the way BuildKit does: `<Dockerfile>.dockerignore` next to the Dockerfile
 * (e.g. `build/app.Dockerfile.dockerignore`) wins over `<context>/.dockerignore`. No file: no patterns.
 */
export async function loadIgnoreFile(
  contextDir: string,
  dockerfilePath: string,
): Promise<{ file: string | null; patterns: IgnorePattern[] }> {
  const candidates = [
    `${path.resolve(dockerfilePath)}.dockerignore`,
    path.join(path.resolve(contextDir), '.dockerignore'),
  ];
  for (const candidate of candidates) {
    let text: string;
    try {
      text = await readFile(candidate, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw new KilnError(
        'context',
        'DOCKERIGNORE_READ',
        `cannot read ${candidate}: ${(e as Error).message}`,
        {
          hint: 'check the file permissions, or remove the file',
          cause: e,
        },
      );
    }
    return { file: candidate, patterns: parseDockerignore(text, candidate) };
  }
  return { file: null, patterns: [] };
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Every included entry of the context (files, symlinks, directories), relative, `/`-separated,
 * sorted bytewise. Symlinks are listed, never followed. Ignored directories are not descended into
 * when `canSkipDir` says nothing below them can be re-included; an ignored directory that is
 * descended into is itself left out, only its re-included children are listed.
 *
 * Note: Docker always sends the Dockerfile and the .dockerignore to the builder even when the
 * ignore file excludes them (they are needed to run the build, just not COPY-able). This function
 * applies the patterns as written; keeping those two available is the caller's job.
 */
export async function listContextFiles(contextDir: string, matcher: IgnoreMatcher): Promise<string[]> {
  const out: string[] = [];
  const walk = async (absDir: string, relDir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(absDir, { withFileTypes: true });
    } catch (e) {
      throw new KilnError('context', 'CONTEXT_READ', `cannot read ${absDir}: ${(e as Error).message}`, {
        hint: 'check the build context path and its permissions',
        cause: e,
      });
    }
    for (const ent of entries) {
      const rel = relDir === '' ? ent.name : `${relDir}/${ent.name}`;
      if (ent.isDirectory()) {
        if (matcher.canSkipDir(rel)) continue;
        if (!matcher.matches(rel)) out.push(rel);
        await walk(path.join(absDir, ent.name), rel);
      } else if (!matcher.matches(rel)) {
        out.push(rel);
      }
    }
  };
  await walk(path.resolve(contextDir), '');
  return out.sort(byteOrder);
}

/**
 * The context's ignore patterns: the .dockerignore's, plus kiln's own layer cache when it lies
 * inside the context (GitLab caches only paths inside the project, which is often the context): it
 * must never be COPYed into the image it caches. Added last, so no `!` line brings it back.
 */
export async function contextIgnore(
  contextDir: string,
  dockerfilePath: string,
  cacheDir: string | undefined,
): Promise<IgnorePattern[]> {
  return excludeOwnDir((await loadIgnoreFile(contextDir, dockerfilePath)).patterns, contextDir, cacheDir);
}

/** `patterns` plus one leaving out `dir` when it lies strictly inside `contextDir`. */
export function excludeOwnDir(
  patterns: IgnorePattern[],
  contextDir: string,
  dir: string | undefined,
): IgnorePattern[] {
  if (!dir) return patterns;
  const rel = path.relative(path.resolve(contextDir), path.resolve(dir));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return patterns;
  return [...patterns, { pattern: rel.split(path.sep).join('/'), exclusion: false }];
}
