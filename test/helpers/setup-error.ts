/**
 * Failures of test set-up (a registry that would not start, a base image that did not build). Not a
 * KilnError: kiln's codes are a closed list of what kiln itself reports, and these are the suite's own.
 */
export class SetupError extends Error {
  constructor(
    readonly category: string,
    readonly code: string,
    message: string,
    opts: { hint?: string; cause?: unknown } = {},
  ) {
    super(
      opts.hint ? `${message} (${opts.hint})` : message,
      opts.cause === undefined ? undefined : { cause: opts.cause },
    );
    this.name = 'SetupError';
  }
}
