/**
 * COPY/ADD sources from the build context: paths cleaned and kept inside the context, wildcards
 * matched per path component (Go filepath.Match, as BuildKit does), and .dockerignore'd entries
 * invisible, whether named directly, matched by a wildcard or found inside a copied directory.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import { KilnError, type SourcePosition } from '../util/errors.ts';
import { IgnoreMatcher } from './dockerignore.ts';

const WILDCARD = /[*?[\\]/;

/** One path component pattern → RegExp (`*` and `?` never cross `/`; `[...]` classes; `\` escapes). */

export interface CopySource {
  /** Path on the host to read from (context dir entry, another stage's rootfs entry, a temp file). */
  hostPath: string;
  /** The tree `hostPath` belongs to: a top-level symlink source is resolved inside it, never outside. */
  sourceRoot: string;
  /** Path relative to the source root, used for --parents and for naming. */
  relPath: string;
}

export function componentRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) re += '\\[';
      else {
        let body = pattern.slice(i + 1, end);
        if (body.startsWith('^') || body.startsWith('!')) body = '^' + body.slice(1);
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += escapeRe(ch);
  }
  return new RegExp(re + '$', 'u');
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export class ContextSource {
  constructor(
    readonly dir: string,
    readonly matcher: IgnoreMatcher,
  ) {}

  /** True when the .dockerignore hides this context-relative path. */
  ignored(rel: string): boolean {
    return rel !== '' && rel !== '.' && this.matcher.matches(rel);
  }

  /** `skip` callback for copyIntoRoot: hides ignored entries inside copied directories. */
  skip = (hostPath: string): boolean => {
    const rel = relative(this.dir, hostPath).split(sep).join('/');
    return !rel.startsWith('..') && this.ignored(rel);
  };

  /**
   * Resolves one source as written in the Dockerfile. Returns the matches (several, or none, for
   * a wildcard) and whether a wildcard was used.
   */
  async resolve(src: string, at: SourcePosition): Promise<{ sources: CopySource[]; wildcard: boolean }> {
    const cleaned =
      posix
        .normalize('/' + src)
        .replace(/^\/+/, '')
        .replace(/\/+$/, '') || '.';
    const hasWildcard = WILDCARD.test(cleaned);
    if (!hasWildcard) {
      const host = join(this.dir, cleaned);
      const st = await lstat(host).catch(() => null);
      if (!st || this.ignored(cleaned)) {
        throw new KilnError(
          'context',
          'COPY_SOURCE_MISSING',
          `"${src}" is not in the build context${st ? ' (it is excluded by .dockerignore)' : ''}`,
          {
            position: at,
            hint: st
              ? 'remove it from .dockerignore or add a !exception'
              : `check the path; it is resolved relative to the context directory ${this.dir}`,
          },
        );
      }
      return { sources: [{ hostPath: host, sourceRoot: this.dir, relPath: cleaned }], wildcard: false };
    }
    const parts = cleaned.split('/');
    let level: string[] = [''];
    for (const part of parts) {
      const next: string[] = [];
      const re = WILDCARD.test(part) ? componentRegExp(part) : null;
      for (const base of level) {
        if (re === null) {
          const rel = base ? `${base}/${part}` : part;
          if (
            await lstat(join(this.dir, rel)).then(
              () => true,
              () => false,
            )
          )
            next.push(rel);
          continue;
        }
        const entries = await readdir(join(this.dir, base)).catch(() => [] as string[]);
        for (const name of entries.sort()) if (re.test(name)) next.push(base ? `${base}/${name}` : name);
      }
      level = next.filter((r) => !this.ignored(r));
    }
    // A wildcard that matches nothing copies nothing (BuildKit's AllowEmptyWildcard): the idiom
    // `COPY package.json yarn.lock* ./` works without a yarn.lock.
    return {
      sources: level.map((rel) => ({ hostPath: join(this.dir, rel), sourceRoot: this.dir, relPath: rel })),
      wildcard: true,
    };
  }
}
