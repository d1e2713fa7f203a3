/**
 * One live status line at the bottom of a terminal, redrawn in place (`\r` and erase-line), with
 * every other output (log lines, RUN output) written above it: the line is taken away, the output
 * written, and the line put back, but only at the start of a line, so that a RUN step's unfinished
 * line is never cut by it.
 */
const ERASE = '\r\x1b[K';
/** At most this often a redraw from an update; a new text from `write` or `clear` is never held back. */
const REDRAW_MS = 100;

export interface TermOut {
  write(chunk: string | Uint8Array): unknown;
  /** The terminal's width, when known: a longer line would wrap and break the redraw. */
  readonly columns?: number;
}

export class StatusLine {
  private wanted = '';
  private shown = false;
  private atLineStart = true;
  private lastDraw = -Infinity;

  constructor(
    private readonly out: TermOut,
    private readonly now: () => number = Date.now,
  ) {}

  /** Output other than the status: written above it. */
  write(chunk: string | Uint8Array): void {
    if (chunk.length === 0) return;
    this.hide();
    this.out.write(chunk);
    const last = typeof chunk === 'string' ? chunk.charCodeAt(chunk.length - 1) : chunk[chunk.length - 1];
    this.atLineStart = last === 10;
    this.show();
  }

  /** A new status text; redrawn now unless the last redraw was less than 100 ms ago (`force` draws anyway). */
  set(text: string, force = false): void {
    this.wanted = text;
    if (text === '') {
      this.hide();
      return;
    }
    if (!force && this.now() - this.lastDraw < REDRAW_MS) return;
    this.show();
  }

  /** Takes the status away (at the end of the build, before an error is printed). */
  clear(): void {
    this.wanted = '';
    this.hide();
  }

  private hide(): void {
    if (!this.shown) return;
    this.out.write(ERASE);
    this.shown = false;
  }

  private show(): void {
    if (this.wanted === '' || !this.atLineStart) return;
    const width = this.out.columns ?? 0;
    const text = width > 1 && this.wanted.length >= width ? this.wanted.slice(0, width - 1) : this.wanted;
    // One write: the erase and the new text reach the terminal together (no flicker).
    this.out.write(`${this.shown ? ERASE : '\r'}${text}`);
    this.shown = true;
    this.lastDraw = this.now();
  }
}
