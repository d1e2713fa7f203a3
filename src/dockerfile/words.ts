/**
 * Word-level lexing of instruction lines, ported in spirit from BuildKit's parser: the splitting
 * here keeps quotes and escapes in the words, because expansion (expand.ts) removes them later and
 * must see them to know what was quoted.
 */

export type EscapeToken = '\\' | '`';

const isSpace = (ch: string): boolean =>
  ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\v' || ch === '\f';

/**
 * Splits on unquoted white space, keeping quotes and escape tokens in the words (BuildKit parseWords).
 * Used by ENV, LABEL and ARG so that `a="b c"` stays one word.
 */
export function splitWordsKeepQuotes(rest: string, escape: EscapeToken): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: string | null = null;
  let blankOk = false;
  const chars = Array.from(rest);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (quote === null) {
      if (isSpace(ch)) {
        if (inWord && (blankOk || word.length > 0)) words.push(word);
        word = '';
        blankOk = false;
        inWord = false;
        continue;
      }
      inWord = true;
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
        word += ch;
        continue;
      }
      if (ch === escape) {
        if (i + 1 === chars.length) continue; // an escape at the very end is dropped
        word += ch + chars[++i]!;
        continue;
      }
      word += ch;
    } else {
      if (ch === quote) {
        quote = null;
        word += ch;
        continue;
      }
      // Nothing can be escaped inside single quotes.
      if (ch === escape && quote !== "'") {
        if (i + 1 === chars.length) {
          quote = null;
          continue;
        }
        word += ch + chars[++i]!;
        continue;
      }
      word += ch;
    }
  }
  if (inWord && (blankOk || word.length > 0)) words.push(word);
  return words;
}

/** Splits on runs of white space with no quote handling (BuildKit parseStringsWhitespaceDelimited). */
export function splitWhitespace(rest: string): string[] {
  const t = rest.trim();
  return t === '' ? [] : t.split(/[ \t\r\n\v\f]+/);
}

export interface ExtractedFlags {
  flags: string[];
  /** Offset in `line` where the arguments start. */
  restOffset: number;
}

/**
 * Takes the leading `--flag[=value]` words off an instruction's arguments (BuildKit
 * extractBuilderFlags): quotes inside a flag word are removed, `\` escapes the next character and a
 * bare `--` ends the flags.
 */
export function extractFlags(line: string): ExtractedFlags {
  const flags: string[] = [];
  let pos = 0;
  const n = line.length;
  for (;;) {
    while (pos < n && isSpace(line[pos]!)) pos++;
    if (pos >= n) return { flags, restOffset: n };
    if (!(line[pos] === '-' && line[pos + 1] === '-')) return { flags, restOffset: pos };
    let word = '';
    let quote: string | null = null;
    let blankOk = false;
    for (; pos < n; pos++) {
      const ch = line[pos]!;
      if (quote === null) {
        if (isSpace(ch)) break;
        if (ch === "'" || ch === '"') {
          quote = ch;
          blankOk = true;
          continue;
        }
        if (ch === '\\') {
          if (pos + 1 === n) continue;
          word += line[++pos]!;
          continue;
        }
        word += ch;
      } else {
        if (ch === quote) {
          quote = null;
          continue;
        }
        if (ch === '\\') {
          if (pos + 1 === n) {
            quote = null;
            continue;
          }
          word += line[++pos]!;
          continue;
        }
        word += ch;
      }
    }
    if (word === '--') {
      while (pos < n && isSpace(line[pos]!)) pos++;
      return { flags, restOffset: pos };
    }
    if (blankOk || word.length > 0) flags.push(word);
  }
}

/** Splits a line into words keeping quotes, with `\` escapes kept raw (for heredoc detection). */
function rawShellWords(line: string): string[] {
  return splitWordsKeepQuotes(line, '\\');
}

export interface HeredocMarker {
  name: string;
  /** False when any part of the delimiter was quoted: the body is then taken literally. */
  expand: boolean;
  /** `<<-`: leading tabs are stripped from body lines and the terminator. */
  chomp: boolean;
  fileDescriptor: number;
}

const HEREDOC_RE = /^(\d*)<<(-?)\s*([^<]*)$/;

/** Unquotes a heredoc delimiter word; reports whether it contained quotes. */
function unquoteDelimiter(word: string): { name: string; quoted: boolean } {
  let name = '';
  let quoted = false;
  let quote: string | null = null;
  for (let i = 0; i < word.length; i++) {
    const ch = word[i]!;
    if (quote === null) {
      if (ch === "'" || ch === '"') {
        quote = ch;
        quoted = true;
        continue;
      }
      if (ch === '\\' && i + 1 < word.length) {
        name += word[++i]!;
        quoted = true;
        continue;
      }
      name += ch;
    } else if (ch === quote) {
      quote = null;
    } else {
      name += ch;
    }
  }
  return { name, quoted };
}

/** Parses one word as a heredoc marker (`<<EOF`, `<<-"EOF"`, `3<<EOF`), or null. */
export function parseHeredocMarker(word: string): HeredocMarker | null {
  const m = HEREDOC_RE.exec(word);
  if (!m) return null;
  const rest = m[3]!;
  if (rest.length === 0) return null;
  const { name, quoted } = unquoteDelimiter(rest);
  if (name.length === 0 || /\s/.test(name)) return null;
  return { name, expand: !quoted, chomp: m[2] === '-', fileDescriptor: m[1] ? Number(m[1]) : 0 };
}

/** All heredoc markers of an instruction line, in order. */
export function heredocMarkersOf(line: string): HeredocMarker[] {
  if (!line.includes('<<')) return [];
  const out: HeredocMarker[] = [];
  for (const w of rawShellWords(line)) {
    const h = parseHeredocMarker(w);
    if (h) out.push(h);
  }
  return out;
}
