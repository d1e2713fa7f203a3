/**
 * Docker's shell-word expansion for Dockerfile instructions (filled in by its own module work).
 * Contract, fixed here so parser and planner can rely on it:
 *  - expandWord: one word, quotes removed, escapes processed, variables substituted (Docker's ProcessWord).
 *  - expandWords: like expandWord but splits on unquoted white space (Docker's ProcessWords).
 * Unknown variables expand to "" ; `${v:?msg}` on an unset/empty variable throws a KilnError.
 */
export type VarLookup = (name: string) => string | undefined;

export interface ExpandOptions {
  escapeToken: '\\' | '`';
  /** Variables referenced during expansion are reported here (for unused build-arg warnings). */
  onUse?: (name: string) => void;
}

export function expandWord(_word: string, _vars: VarLookup, _opts: ExpandOptions): string {
  throw new Error('expandWord: not implemented');
}

export function expandWords(_word: string, _vars: VarLookup, _opts: ExpandOptions): string[] {
  throw new Error('expandWords: not implemented');
}
