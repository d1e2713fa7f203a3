/**
 * Docker's shell-word expansion for Dockerfile instructions, following BuildKit's
 * frontend/dockerfile/shell/lex.go (ProcessWord, ProcessWords, ProcessWordWithMatches).
 * Contract, fixed here so parser and planner can rely on it:
 *  - expandWord: one word, quotes removed, escapes processed, variables substituted (Docker's ProcessWord).
 *  - expandWords: like expandWord but splits on unquoted white space (Docker's ProcessWords).
 * Unknown variables expand to "" ; `${v:?msg}` on an unset/empty variable throws a KilnError.
 *
 * Supported forms: `$name`, `${name}`, `$1`, special parameters (`$@ $* $# $? $- $$ $! $0`, which look up
 * a variable of that one-character name and so normally expand to ""), `${v-w}`, `${v:-w}`, `${v+w}`,
 * `${v:+w}`, `${v?m}`, `${v:?m}`, `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}`, `${v//p/r}`.
 * Patterns are shell globs (`*`, `?`, `[...]`, `[!...]`); the escape token makes the next character literal.
 * A `$` not followed by a name, a special parameter or `{` stays a literal `$`.
 */
import { KilnError } from '../util/errors.ts';

export type VarLookup = (name: string) => string | undefined;

export interface ExpandOptions {
  escapeToken: '\\' | '`';
  /** Variables referenced during expansion are reported here (for unused build-arg warnings). */
  onUse?: (name: string) => void;
  /**
   * Quotes are plain characters (BuildKit's SkipProcessQuotes, used for COPY/ADD heredoc bodies):
   * `'$X'` still expands and the quotes stay in the result.
   */
  skipProcessQuotes?: boolean;
}

/** Result of one expansion with the names that were looked up, split by whether they were set. */
export interface ExpandResult {
  /** The expanded word (ProcessWord). */
  result: string;
  /** The expanded word split on unquoted white space (ProcessWords); empty words dropped. */
  words: string[];
  /** Names looked up that had a value (possibly empty). */
  matched: Set<string>;
  /** Names looked up that were unset. */
  unmatched: Set<string>;
}

export function expandWord(word: string, vars: VarLookup, opts: ExpandOptions): string {
  return expandWordWithMatches(word, vars, opts).result;
}

export function expandWords(word: string, vars: VarLookup, opts: ExpandOptions): string[] {
  return expandWordWithMatches(word, vars, opts).words;
}

/** Expands `word` once and returns both forms plus the variable names it used. */
export function expandWordWithMatches(word: string, vars: VarLookup, opts: ExpandOptions): ExpandResult {
  const lexer = new Lexer(word, vars, opts);
  const { result, words } = lexer.run();
  return { result, words, matched: lexer.matched, unmatched: lexer.unmatched };
}

/** True when expanding `word` would fail because a `${v?msg}` / `${v:?msg}` variable is unset (or empty). */
export function hasUnsetRequired(word: string, vars: VarLookup, opts: ExpandOptions): boolean {
  try {
    expandWordWithMatches(word, vars, opts);
    return false;
  } catch (e) {
    return e instanceof KilnError && e.code === 'REQUIRED_VAR';
  }
}

const EOF = '';

/** Raised inside the lexer; converted to a KilnError with the source text at the top. */
class LexFailure extends Error {
  constructor(
    readonly code: 'BAD_SUBSTITUTION' | 'REQUIRED_VAR' | 'UNTERMINATED_QUOTE',
    message: string,
    readonly varName?: string,
  ) {
    super(message);
  }
}

const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);

function isSpace(ch: string): boolean {
  return ch !== EOF && /\s/u.test(ch) && ch !== '\uFEFF';
}
function isDigit(ch: string): boolean {
  return ch !== EOF && /\p{Nd}/u.test(ch);
}
function isNameChar(ch: string): boolean {
  return ch !== EOF && (ch === '_' || /[\p{L}\p{Nd}]/u.test(ch));
}

/** Accumulates ProcessWords output: unquoted white space splits, quoted or escaped text never does. */
class WordsBuilder {
  private buf = '';
  private inWord = false;
  readonly words: string[] = [];

  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.buf.length > 0) {
        this.words.push(this.buf);
        this.buf = '';
        this.inWord = false;
      }
    } else {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.buf += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.buf += s;
    this.inWord = true;
  }
  finish(): string[] {
    if (this.buf.length > 0) {
      this.words.push(this.buf);
      this.buf = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class Lexer {
  private readonly chars: string[];
  private pos = 0;
  private readonly esc: string;
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();

  constructor(
    private readonly source: string,
    private readonly vars: VarLookup,
    private readonly opts: ExpandOptions,
  ) {
    this.chars = Array.from(source);
    this.esc = opts.escapeToken;
  }

  run(): { result: string; words: string[] } {
    try {
      return this.processStopOn(EOF, false);
    } catch (e) {
      if (!(e instanceof LexFailure)) throw e;
      const quoted = JSON.stringify(this.source);
      if (e.code === 'REQUIRED_VAR') {
        const name = e.varName ?? '';
        throw new KilnError('dockerfile', 'REQUIRED_VAR', `${e.message} (in ${quoted})`, {
          hint: `set "${name}" (ARG/ENV before this line, or --build-arg ${name}=...)`,
        });
      }
      if (e.code === 'UNTERMINATED_QUOTE') {
        throw new KilnError('dockerfile', 'UNTERMINATED_QUOTE', `failed to process ${quoted}: ${e.message}`, {
          hint: 'close the quote, or escape it with the escape character',
        });
      }
      throw new KilnError('dockerfile', 'BAD_SUBSTITUTION', `failed to process ${quoted}: ${e.message}`, {
        hint: 'supported forms: $v ${v} ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?m} ${v?m} ${v#p} ${v##p} ${v%p} ${v%%p} ${v/p/r} ${v//p/r}; escape a literal $ with the escape character',
      });
    }
  }

  private peek(): string {
    return this.pos < this.chars.length ? this.chars[this.pos]! : EOF;
  }
  private next(): string {
    return this.pos < this.chars.length ? this.chars[this.pos++]! : EOF;
  }

  /**
   * Processes up to (and consuming) `stopChar`, or to the end when stopChar is EOF.
   * With rawEscapes the escape token is kept in the output (used for patterns, where it quotes globs).
   */
  private processStopOn(stopChar: string, rawEscapes: boolean): { result: string; words: string[] } {
    let result = '';
    const words = new WordsBuilder();
    for (;;) {
      const ch = this.peek();
      if (ch === EOF) break;
      if (stopChar !== EOF && ch === stopChar) {
        this.next();
        return { result, words: words.finish() };
      }
      if (ch === '$') {
        const v = this.processDollar();
        result += v;
        words.addString(v);
      } else if (ch === "'" && !this.opts.skipProcessQuotes) {
        const v = this.processSingleQuote();
        result += v;
        words.addRawString(v);
      } else if (ch === '"' && !this.opts.skipProcessQuotes) {
        const v = this.processDoubleQuote(rawEscapes);
        result += v;
        words.addRawString(v);
      } else {
        let c = this.next();
        if (c === this.esc) {
          if (rawEscapes) {
            words.addRawChar(c);
            result += c;
          }
          c = this.next();
          if (c === EOF) break;
          words.addRawChar(c);
        } else {
          words.addChar(c);
        }
        result += c;
      }
    }
    if (stopChar !== EOF) {
      throw new LexFailure(
        'BAD_SUBSTITUTION',
        `unexpected end of text while looking for matching '${stopChar}'`,
      );
    }
    return { result, words: words.finish() };
  }

  private processSingleQuote(): string {
    this.next();
    let result = '';
    for (;;) {
      const ch = this.next();
      if (ch === EOF) {
        throw new LexFailure(
          'UNTERMINATED_QUOTE',
          'unexpected end of text while looking for matching single-quote',
        );
      }
      if (ch === "'") return result;
      result += ch;
    }
  }

  private processDoubleQuote(rawEscapes: boolean): string {
    this.next();
    let result = '';
    for (;;) {
      const p = this.peek();
      if (p === EOF) {
        throw new LexFailure(
          'UNTERMINATED_QUOTE',
          'unexpected end of text while looking for matching double-quote',
        );
      }
      if (p === '"') {
        this.next();
        return result;
      }
      if (p === '$') {
        result += this.processDollar();
        continue;
      }
      let ch = this.next();
      if (ch === this.esc) {
        if (rawEscapes) result += ch;
        const n = this.peek();
        if (n === EOF) continue;
        // Only ", $ and the escape token itself can be escaped; other escapes stay literal.
        if (n === '"' || n === '$' || n === this.esc) ch = this.next();
      }
      result += ch;
    }
  }

  private lookup(name: string): string | undefined {
    this.opts.onUse?.(name);
    const v = this.vars(name);
    if (v === undefined) this.unmatched.add(name);
    else this.matched.add(name);
    return v;
  }

  private processName(): string {
    let name = '';
    for (;;) {
      const ch = this.peek();
      if (ch === EOF) break;
      if (name.length === 0 && isDigit(ch)) {
        while (isDigit(this.peek())) name += this.next();
        return name;
      }
      if (name.length === 0 && SPECIAL_PARAMS.has(ch)) return this.next();
      if (!isNameChar(ch)) break;
      name += this.next();
    }
    return name;
  }

  private processDollar(): string {
    this.next(); // '$'
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      return this.lookup(name) ?? '';
    }
    this.next(); // '{'
    const first = this.peek();
    if (first === EOF) throw new LexFailure('BAD_SUBSTITUTION', "syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') {
      throw new LexFailure('BAD_SUBSTITUTION', 'syntax error: bad substitution');
    }
    const name = this.processName();
    let ch = this.next();
    let mod = ch;
    if (ch === EOF) throw new LexFailure('BAD_SUBSTITUTION', "syntax error: missing '}'");
    if (ch === '}') return this.lookup(name) ?? '';

    if (ch === '/') {
      const replaceAll = this.peek() === '/';
      if (replaceAll) this.next();
      const pattern = this.subWord('/', true, "syntax error: missing '/' in ${}");
      const replacement = this.subWord('}', false, "syntax error: missing '}'");
      const value = this.lookup(name) ?? '';
      return replacePattern(value, compileGlob(pattern, this.esc), replacement, replaceAll);
    }

    let nullIsUnset = false;
    if (ch === ':') {
      nullIsUnset = true;
      ch = this.next();
      mod += ch;
    }
    if (!['+', '-', '?', '#', '%'].includes(ch) || (nullIsUnset && (ch === '#' || ch === '%'))) {
      if (ch === EOF) throw new LexFailure('BAD_SUBSTITUTION', "syntax error: missing '}'");
      throw new LexFailure('BAD_SUBSTITUTION', `unsupported modifier (${mod}) in substitution`);
    }
    const patternOp = ch === '#' || ch === '%';
    let word = this.subWord('}', patternOp, "syntax error: missing '}'");
    const value = this.lookup(name);
    const isUnset = value === undefined || (nullIsUnset && value === '');

    switch (ch) {
      case '-':
        return isUnset ? word : (value ?? '');
      case '+':
        return isUnset ? '' : word;
      case '?': {
        if (!isUnset) return value ?? '';
        const message =
          word !== ''
            ? `is required: ${word}`
            : `is not allowed to be ${value === undefined ? 'unset' : 'empty'}`;
        throw new LexFailure('REQUIRED_VAR', `variable "${name}" ${message}`, name);
      }
      default: {
        // '#' / '%': shortest match; doubled ('##' / '%%'): longest.
        let greedy = false;
        if (word.startsWith(ch)) {
          greedy = true;
          word = word.slice(1);
        }
        const m = compileGlob(word, this.esc);
        const v = value ?? '';
        return ch === '#' ? trimPrefix(v, m, greedy) : trimSuffix(v, m, greedy);
      }
    }
  }

  /** The word of a `${v<op>word}` form up to `stop`, mapping a missing terminator to `missingMsg`. */
  private subWord(stop: string, rawEscapes: boolean, missingMsg: string): string {
    try {
      return this.processStopOn(stop, rawEscapes).result;
    } catch (e) {
      if (e instanceof LexFailure && e.code === 'BAD_SUBSTITUTION' && this.peek() === EOF) {
        if (e.message.startsWith('unexpected end of text while looking for matching')) {
          throw new LexFailure('BAD_SUBSTITUTION', missingMsg);
        }
      }
      throw e;
    }
  }
}

type Matcher = (s: string) => boolean;

function escapeRegex(ch: string): string {
  // Only syntax characters: a /u RegExp rejects needless escapes such as \- or \/.
  return /[\\^$.*+?()[\]{}|]/.test(ch) ? `\\${ch}` : ch;
}

/**
 * Compiles a shell glob (`*`, `?`, `[...]`, `[!...]`/`[^...]`, escape token quoting the next character)
 * into a whole-string matcher.
 */
function compileGlob(pattern: string, esc: string): Matcher {
  const p = Array.from(pattern);
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === esc) {
      // the escape token (kept by raw escapes) quotes the next character
      if (i + 1 < p.length) re += escapeRegex(p[++i]!);
      else re += escapeRegex(c);
    } else if (c === '*') {
      re += '[\\s\\S]*';
    } else if (c === '?') {
      re += '[\\s\\S]';
    } else if (c === '[') {
      const cls = parseBracket(p, i, esc);
      if (cls) {
        re += cls.re;
        i = cls.end;
      } else {
        re += '\\[';
      }
    } else {
      re += escapeRegex(c);
    }
  }
  const rx = new RegExp(`^(?:${re})$`, 'u');
  return (s) => rx.test(s);
}

/** Parses a bracket expression at p[start] === '['; null when it is not closed (then '[' is literal). */
function parseBracket(p: string[], start: number, esc: string): { re: string; end: number } | null {
  let i = start + 1;
  let negate = false;
  if (p[i] === '!' || p[i] === '^') {
    negate = true;
    i++;
  }
  let body = '';
  let first = true;
  for (; i < p.length; i++) {
    const c = p[i]!;
    if (c === ']' && !first) {
      return { re: `[${negate ? '^' : ''}${body}]`, end: i };
    }
    first = false;
    let lit = c;
    if (c === esc && i + 1 < p.length) lit = p[++i]!;
    if (p[i + 1] === '-' && i + 2 < p.length && p[i + 2] !== ']') {
      let hi = p[i + 2]!;
      i += 2;
      if (hi === esc && i + 1 < p.length) hi = p[++i]!;
      if (hi.codePointAt(0)! < lit.codePointAt(0)!) {
        throw new LexFailure('BAD_SUBSTITUTION', `invalid range ${lit}-${hi} in pattern`);
      }
      body += `${escapeClassChar(lit)}-${escapeClassChar(hi)}`;
    } else {
      body += escapeClassChar(lit);
    }
  }
  return null;
}

function escapeClassChar(ch: string): string {
  return /[\\\]^[-]/.test(ch) ? `\\${ch}` : ch;
}

/** `${v#p}` (shortest) / `${v##p}` (longest): remove a matching prefix. */
function trimPrefix(value: string, m: Matcher, greedy: boolean): string {
  const cps = Array.from(value);
  const n = cps.length;
  for (let k = 0; k <= n; k++) {
    const i = greedy ? n - k : k;
    if (m(cps.slice(0, i).join(''))) return cps.slice(i).join('');
  }
  return value;
}

/** `${v%p}` (shortest) / `${v%%p}` (longest): remove a matching suffix. */
function trimSuffix(value: string, m: Matcher, greedy: boolean): string {
  const cps = Array.from(value);
  const n = cps.length;
  for (let k = 0; k <= n; k++) {
    const i = greedy ? k : n - k;
    if (m(cps.slice(i).join(''))) return cps.slice(0, i).join('');
  }
  return value;
}

/** `${v/p/r}` / `${v//p/r}`: replace the leftmost-longest (non-empty) match, or every one. */
function replacePattern(value: string, m: Matcher, replacement: string, all: boolean): string {
  const cps = Array.from(value);
  const n = cps.length;
  let out = '';
  let i = 0;
  let replaced = false;
  while (i < n) {
    let end = -1;
    if (all || !replaced) {
      for (let j = n; j > i; j--) {
        if (m(cps.slice(i, j).join(''))) {
          end = j;
          break;
        }
      }
    }
    if (end > 0) {
      out += replacement;
      i = end;
      replaced = true;
    } else {
      out += cps[i];
      i++;
    }
  }
  return out;
}
