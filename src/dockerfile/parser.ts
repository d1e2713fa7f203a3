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

export function parseDockerfile(text: string, file = 'Dockerfile'): DockerfileAst {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  // A trailing newline does not start another line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const directives: Directives = { escape: '\\' };
  const warnings: ParseWarning[] = [];
  const instructions: RawInstruction[] = [];
  const seen = new Set<string>();
  let inDirectives = true;
  let comments: string[] = [];

  const handleDirective = (line: string, lineNo: number): boolean => {
    if (!inDirectives) return false;
    const m = DIRECTIVE_RE.exec(line);
    if (!m) {
      inDirectives = false;
      return false;
    }
    const key = m[1]!.toLowerCase();
    const value = m[2]!;
    if (!KNOWN_DIRECTIVES.has(key)) {
      // An unknown directive is a comment, and like any comment it ends the directive block.
      inDirectives = false;
      return false;
    }
    if (seen.has(key)) {
      throw new KilnError(
        'dockerfile',
        'DUPLICATE_DIRECTIVE',
        `only one "${key}" parser directive can be used`,
        {
          position: { file, line: lineNo },
          hint: `remove the second "# ${key}=" line`,
        },
      );
    }
    seen.add(key);
    if (key === 'escape') {
      if (value !== '\\' && value !== '`') {
        throw new KilnError(
          'dockerfile',
          'BAD_ESCAPE',
          `invalid escape token "${value}": it must be \\ or \``,
          {
            position: { file, line: lineNo },
            hint: 'write "# escape=`" (for Windows paths) or "# escape=\\"',
          },
        );
      }
      directives.escape = value as EscapeToken;
    } else if (key === 'syntax') {
      directives.syntax = value;
    } else {
      directives.check = value;
    }
    return true;
  };

  const contRe = (): RegExp => (directives.escape === '\\' ? /\\[ \t]*$/ : /`[ \t]*$/);
  /** Strips a trailing escape token; says whether the instruction continues on the next line. */
  const trimContinuation = (s: string): [string, boolean] => {
    const re = contRe();
    if (re.test(s)) return [s.replace(re, ''), true];
    return [s, false];
  };

  let i = 0;
  while (i < lines.length) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    i++;
    if (handleDirective(trimLeft(raw), lineNo) && inDirectives) continue;
    if (isComment(raw)) {
      const c = trimLeft(raw).slice(1).trim();
      if (c === '') comments = [];
      else comments.push(c);
      continue;
    }
    const first = trimLeft(raw);
    let [line, cont] = trimContinuation(first);
    if (!cont && line.trim() === '') {
      comments = [];
      continue;
    }
    let endLine = lineNo;
    let emptyContinuation = false;
    while (cont && i < lines.length) {
      const next = lines[i]!;
      i++;
      endLine = i;
      if (isComment(next)) continue;
      if (trimLeft(next) === '') {
        emptyContinuation = true;
        continue;
      }
      const [part, more] = trimContinuation(next);
      line += part;
      cont = more;
    }
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
    // ONBUILD is a compound instruction: its trigger may announce heredocs too (BuildKit canContainHeredoc).
    const heredocKeyword =
      inst.keyword === 'onbuild' ? (/^(\S+)/.exec(inst.rest)?.[1] ?? '').toLowerCase() : inst.keyword;
    if (HEREDOC_INSTRUCTIONS.has(heredocKeyword)) {
      for (const marker of heredocMarkersOf(inst.rest)) {
        let content = '';
        let terminated = false;
        const bodyStart = i + 1;
        while (i < lines.length) {
          const body = lines[i]!;
          i++;
          endLine = i;
          const candidate = marker.chomp ? body.replace(/^\t+/, '') : body;
          if (candidate === marker.name) {
            terminated = true;
            break;
          }
          content += (marker.chomp ? body.replace(/^\t+/, '') : body) + '\n';
        }
        if (!terminated) {
          throw new KilnError(
            'dockerfile',
            'UNTERMINATED_HEREDOC',
            `unterminated heredoc "<<${marker.chomp ? '-' : ''}${marker.name}" (the body starting at line ${bodyStart} never reaches a line "${marker.name}")`,
            {
              position: { file, line: lineNo },
              hint: `end the heredoc with a line holding only ${marker.name}${marker.chomp ? ' (leading tabs allowed)' : ''}`,
            },
          );
        }
        const doc: Heredoc = { ...marker, content };
        inst.heredocs.push(doc);
      }
    }
    inst.endLine = endLine;
    instructions.push(inst);
  }
  return { file, directives, instructions, warnings };
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
