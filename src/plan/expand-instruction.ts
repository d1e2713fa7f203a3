/**
 * Applies variable expansion to exactly the parts of an instruction that Docker expands: ADD/COPY
 * (sources, destination, --from, --chown, --chmod, --exclude, unquoted heredoc bodies), ENV and
 * LABEL (names and values), EXPOSE, FROM (image, --platform), STOPSIGNAL, USER, VOLUME, WORKDIR,
 * ARG defaults and RUN --mount values. RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK commands are left for
 * the shell, as Docker does.
 */
import type { Instruction } from '../dockerfile/instructions.ts';
import { expandWord, type ExpandOptions, type VarLookup } from '../dockerfile/expand.ts';
import type { EscapeToken } from '../dockerfile/words.ts';
import { KilnError, isKilnError, type SourcePosition } from '../util/errors.ts';

export interface Expander {
  word(w: string): string;
  /**
   * A COPY/ADD heredoc body as BuildKit's ExpandRaw treats it: a lexer with backslash as escape
   * token whatever the escape directive, quotes kept as plain text, so a backslash before `$X`
   * makes it literal (and, as in BuildKit, a backslash before any other character is dropped).
   */
  heredoc(body: string): string;
}

export function makeExpander(
  lookup: VarLookup,
  escape: EscapeToken,
  at: SourcePosition,
  onUse?: (name: string) => void,
): Expander {
  const expand = (w: string, opts: ExpandOptions): string => {
    try {
      return expandWord(w, lookup, { ...opts, ...(onUse ? { onUse } : {}) });
    } catch (e) {
      if (isKilnError(e)) {
        // The word may span lines (heredoc bodies); messages stay on one line.
        const message = e.message.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
        throw new KilnError(e.category, e.code, message, {
          position: at,
          cause: e,
          ...(e.hint ? { hint: e.hint } : {}),
        });
      }
      throw e;
    }
  };
  return {
    word: (w) => expand(w, { escapeToken: escape }),
    heredoc: (body) => expand(body, { escapeToken: '\\', skipProcessQuotes: true }),
  };
}

/** Returns a copy of `ins` with Docker's expansion applied. ARG is handled by the scope itself. */
export function expandInstruction(ins: Instruction, x: Expander): Instruction {
  const opt = (v: string | undefined): string | undefined => (v === undefined ? undefined : x.word(v));
  switch (ins.kind) {
    case 'from': {
      const platform = opt(ins.platform);
      return { ...ins, image: x.word(ins.image), ...(platform !== undefined ? { platform } : {}) };
    }
    case 'run':
      return { ...ins, mounts: ins.mounts.map((m) => x.word(m)) };
    case 'copy':
    case 'add': {
      const from = opt(ins.from);
      const chown = opt(ins.chown);
      const chmod = opt(ins.chmod);
      const checksum = opt(ins.checksum);
      return {
        ...ins,
        sources: ins.sources.map((s) => (s.startsWith('<<') ? s : x.word(s))),
        dest: x.word(ins.dest),
        exclude: ins.exclude.map((e) => x.word(e)),
        heredocs: ins.heredocs.map((h) => (h.expand ? { ...h, content: x.heredoc(h.content) } : h)),
        ...(from !== undefined ? { from } : {}),
        ...(chown !== undefined ? { chown } : {}),
        ...(chmod !== undefined ? { chmod } : {}),
        ...(checksum !== undefined ? { checksum } : {}),
      };
    }
    case 'env':
    case 'label':
      return { ...ins, pairs: ins.pairs.map(([k, v]) => [x.word(k), x.word(v)] as [string, string]) };
    case 'expose':
    case 'volume':
      return { ...ins, values: ins.values.map((v) => x.word(v)) };
    case 'user':
    case 'workdir':
    case 'stopsignal':
      return { ...ins, value: x.word(ins.value) };
    default:
      return ins;
  }
}
