/**
 * The Dockerfile as the parser sees it: directives, then one RawInstruction per instruction with its
 * flags and argument text separated but not yet interpreted. instructions.ts turns these into typed
 * instructions; nothing here expands variables.
 */
import type { EscapeToken } from './words.ts';

export interface Heredoc {
  name: string;
  /** Body, each line ending in "\n"; with `<<-` leading tabs already removed. */
  content: string;
  expand: boolean;
  chomp: boolean;
  fileDescriptor: number;
}

export interface RawInstruction {
  /** Lower-case keyword as written (`run`, `copy`, ... or an unknown word). */
  keyword: string;
  /** The keyword as written, for messages. */
  keywordAsWritten: string;
  /** The instruction with continuations joined (what BuildKit calls Original). */
  original: string;
  /** `--flag[=value]` words, quotes removed, `--` stripped. */
  flags: string[];
  /** The argument text after the flags. */
  rest: string;
  heredocs: Heredoc[];
  /** 1-based first and last line in the file (the last includes heredoc bodies). */
  line: number;
  endLine: number;
  /** Comment lines directly above the instruction. */
  comments: string[];
}

export interface Directives {
  syntax?: string;
  escape: EscapeToken;
  /** Raw value of `# check=`, e.g. `skip=JSONArgsRecommended;error=true`. */
  check?: string;
}

export interface ParseWarning {
  line: number;
  code: string;
  message: string;
}

export interface DockerfileAst {
  file: string;
  directives: Directives;
  instructions: RawInstruction[];
  warnings: ParseWarning[];
}
