/**
 * Every failure kiln reports is a KilnError: a stable code for scripts, a one-line message for
 * people, the place it comes from (file, line, column) when there is one, and a hint saying what to
 * do. The CLI prints `file:line: message` then the hint, and maps the code's class to an exit code.
 */
export interface SourcePosition {
  file: string;
  line: number;
  column?: number;
}

export type ErrorCategory =
  | 'usage' // bad flags or options
  | 'dockerfile' // syntax or semantic error in the Dockerfile
  | 'context' // build context problems: missing COPY source, bad .dockerignore
  | 'registry' // network, auth, missing manifest, digest mismatch
  | 'isolation' // sandbox cannot start
  | 'run' // a RUN step failed
  | 'fs' // extraction, snapshot, layer writing
  | 'cache'
  | 'internal';

export interface KilnErrorOptions {
  hint?: string;
  position?: SourcePosition;
  cause?: unknown;
}

export class KilnError extends Error {
  readonly code: string;
  readonly category: ErrorCategory;
  readonly hint?: string;
  readonly position?: SourcePosition;

  constructor(category: ErrorCategory, code: string, message: string, opts: KilnErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KilnError';
    this.category = category;
    this.code = code;
    this.hint = opts.hint;
    this.position = opts.position;
  }

  /** `Dockerfile:7:3: message` when positioned, else the message; the hint on its own line. */
  format(): string {
    const where = this.position
      ? `${this.position.file}:${this.position.line}${this.position.column ? `:${this.position.column}` : ''}: `
      : '';
    return `${where}${this.message}${this.hint ? `\n  hint: ${this.hint}` : ''}`;
  }
}

/** Exit codes, documented in the README. */
export const EXIT_CODES: Record<ErrorCategory, number> = {
  usage: 2,
  dockerfile: 3,
  context: 4,
  registry: 5,
  isolation: 6,
  run: 7,
  fs: 8,
  cache: 9,
  internal: 70,
};

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}

/** Wraps anything thrown into a KilnError without losing the original as `cause`. */
export function toKilnError(
  e: unknown,
  category: ErrorCategory = 'internal',
  code = 'UNEXPECTED',
): KilnError {
  if (e instanceof KilnError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new KilnError(category, code, msg, { cause: e });
}
