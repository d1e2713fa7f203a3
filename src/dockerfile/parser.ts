/**
 * Dockerfile text → DockerfileAst, following BuildKit's parser rules: directives only at the top,
 * comment lines dropped (also inside continuations), the escape token at the end of a line joins it
 * with the next, empty continuation lines skipped (with a warning), heredoc bodies read after the
 * line that announces them. Errors are KilnErrors carrying file and line; nothing else is thrown.
 */
import type { DockerfileAst, Directives, Heredoc, ParseWarning, RawInstruction } from './ast.ts';
import { KilnError } from '../util/errors.ts';
import { extractFlags, heredocMarkersOf, type EscapeToken } from './words.ts';

const DIRECTIVE_RE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;
const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);
/** Instructions whose arguments may announce heredocs (BuildKit: ADD, COPY, RUN). */
const HEREDOC_INSTRUCTIONS = new Set(['run', 'copy', 'add']);

const trimLeft = (s: string): string => s.replace(/^[ \t\r\n\v\f]+/, '');
const isComment = (s: string): boolean => trimLeft(s).startsWith('#');

/** The lines of a Dockerfile and a cursor over them (the parser reads forward only). */
interface LineReader {
  lines: string[];
  /** Index of the next unread line. */
  next: number;
  file: string;
}

/**
 * Reads the directive block at the top: returns true when `line` was a known directive (and so is
 * consumed). The first line that is not a directive ends the block for good.
 */
class DirectiveReader {
  readonly directives: Directives = { escape: '\\' };
  private open = true;
  private readonly seen = new Set<string>();

  constructor(private readonly file: string) {}

  read(line: string, lineNo: number): boolean {
    if (!this.open) return false;
    const m = DIRECTIVE_RE.exec(line);
    const key = m?.[1]!.toLowerCase();
    // An unknown directive is a comment, and like any comment it ends the directive block.
    if (!m || key === undefined || !KNOWN_DIRECTIVES.has(key)) {
      this.open = false;
      return false;
    }
    const position = { file: this.file, line: lineNo };
    if (this.seen.has(key)) {
      throw new KilnError(
        'dockerfile',
        'DUPLICATE_DIRECTIVE',
        `only one "${key}" parser directive can be used`,
        {
          position,
          hint: `remove the second "# ${key}=" line`,
        },
      );
    }
    this.seen.add(key);
    const value = m[2]!;
    if (key === 'escape') {
      if (value !== '\\' && value !== '`') {
        throw new KilnError(
          'dockerfile',
          'BAD_ESCAPE',
          `invalid escape token "${value}": it must be \\ or \``,
          {
            position,
            hint: 'write "# escape=`" (for Windows paths) or "# escape=\\"',
          },
        );
      }
      this.directives.escape = value as EscapeToken;
    } else if (key === 'syntax') this.directives.syntax = value;
    else this.directives.check = value;
    return true;
  }
}

/**
 * BuildKit's lineContinuationRegex: the escape token as the last non-blank character continues the
 * line unless the character before it is the escape token too (`a\\` ends the line: an escaped
 * escape). A token alone on its line continues. Like BuildKit (Go's regexp has no look-behind), a
 * token after an escaped escape (`a\\\`) does not continue either.
 */
function continuationRe(escape: EscapeToken): RegExp {
  const t = escape === '\\' ? '\\\\' : '`';
  return new RegExp(`(?:([^${t}])${t}|^${t})[ \\t]*$`);
}

/** Strips a trailing continuation token; says whether the instruction continues on the next line. */
function trimContinuation(s: string, re: RegExp): [string, boolean] {
  const m = re.exec(s);
  if (!m) return [s, false];
  return [s.slice(0, m.index) + (m[1] ?? ''), true];
}

/**
 * Joins the continuation lines that follow a first line ending in the escape token. Comment lines
 * inside are dropped, empty ones skipped (and reported), as BuildKit does.
 */
function joinContinuation(
  r: LineReader,
  first: string,
  re: RegExp,
): { line: string; emptyContinuation: boolean } {
  let [line, cont] = trimContinuation(first, re);
  let emptyContinuation = false;
  while (cont && r.next < r.lines.length) {
    const next = r.lines[r.next++]!;
    if (isComment(next)) continue;
    if (trimLeft(next) === '') {
      emptyContinuation = true;
      continue;
    }
    const [part, more] = trimContinuation(next, re);
    line += part;
    cont = more;
  }
  return { line, emptyContinuation };
}

/** Reads the bodies of the heredocs `inst` announces, in order, from the lines after it. */
function readHeredocs(r: LineReader, inst: RawInstruction): void {
  // ONBUILD is a compound instruction: its trigger may announce heredocs too (BuildKit canContainHeredoc).
  const keyword =
    inst.keyword === 'onbuild' ? (/^(\S+)/.exec(inst.rest)?.[1] ?? '').toLowerCase() : inst.keyword;
  if (!HEREDOC_INSTRUCTIONS.has(keyword)) return;
  for (const marker of heredocMarkersOf(inst.rest)) {
    let content = '';
    let terminated = false;
    const bodyStart = r.next + 1;
    while (r.next < r.lines.length) {
      const body = r.lines[r.next++]!;
      const candidate = marker.chomp ? body.replace(/^\t+/, '') : body;
      if (candidate === marker.name) {
        terminated = true;
        break;
      }
      content += candidate + '\n';
    }
    if (!terminated) {
      throw new KilnError(
        'dockerfile',
        'UNTERMINATED_HEREDOC',
        `unterminated heredoc "<<${marker.chomp ? '-' : ''}${marker.name}" (the body starting at line ${bodyStart} never reaches a line "${marker.name}")`,
        {
          position: { file: r.file, line: inst.line },
          hint: `end the heredoc with a line holding only ${marker.name}${marker.chomp ? ' (leading tabs allowed)' : ''}`,
        },
      );
    }
    const doc: Heredoc = { ...marker, content };
    inst.heredocs.push(doc);
  }
}

export function parseDockerfile(text: string, file = 'Dockerfile'): DockerfileAst {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  // A trailing newline does not start another line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const reader: LineReader = { lines, next: 0, file };
  const directives = new DirectiveReader(file);
  const warnings: ParseWarning[] = [];
  const instructions: RawInstruction[] = [];
  let comments: string[] = [];

  while (reader.next < lines.length) {
    const raw = lines[reader.next++]!;
    const lineNo = reader.next;
    if (directives.read(trimLeft(raw), lineNo)) continue;
    if (isComment(raw)) {
      const c = trimLeft(raw).slice(1).trim();
      if (c === '') comments = [];
      else comments.push(c);
      continue;
    }
    const first = trimLeft(raw);
    const re = continuationRe(directives.directives.escape);
    if (!re.test(first) && first.trim() === '') {
      comments = [];
      continue;
    }
    const { line, emptyContinuation } = joinContinuation(reader, first, re);
    if (emptyContinuation) {
      warnings.push({
        line: lineNo,
        code: 'NoEmptyContinuation',
        message: 'empty continuation line (it is ignored; a future Docker release will reject it)',
      });
    }
    if (line.trim() === '') continue;
    const inst = splitInstruction(line, file, lineNo);
    inst.comments = comments;
    comments = [];
    readHeredocs(reader, inst);
    inst.endLine = reader.next;
    instructions.push(inst);
  }
  return { file, directives: directives.directives, instructions, warnings };
}

/** Splits one joined instruction line into keyword, flags and the argument text. */
export function splitInstruction(line: string, file: string, lineNo: number): RawInstruction {
  const trimmed = line.trim();
  const m = /^(\S+)(?:[ \t]+([\s\S]*))?$/.exec(trimmed);
  const keywordAsWritten = m ? m[1]! : trimmed;
  const args = m?.[2] ?? '';
  const { flags, restOffset } = extractFlags(args);
  void file;
  return {
    keyword: keywordAsWritten.toLowerCase(),
    keywordAsWritten,
    original: trimmed,
    flags,
    rest: args.slice(restOffset).replace(/[ \t]+$/, ''),
    heredocs: [],
    line: lineNo,
    endLine: lineNo,
    comments: [],
  };
}
