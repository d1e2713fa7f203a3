/**
 * One logger for the whole build. Secrets registered with `addSecret` are replaced by `***` in
 * every line, whatever the level, before anything reaches the sink. Three formats, as Kaniko's
 * logrus ones: `text` (plain lines), `color` (level names in ANSI colour when the stream is a
 * terminal) and `json` (one object per message: level, msg, time, and any fields).
 */
import { escapeControl } from '../util/errors.ts';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';
export type LogFormat = 'text' | 'color' | 'json';

const ORDER: Record<LogLevel, number> = {
  trace: 0,
  debug: 1,
  info: 2,
  warn: 3,
  error: 4,
  panic: 5,
  fatal: 6,
};

/** logrus's colours: grey for debug and trace, cyan for info, yellow for warnings, red above. */
const COLOUR: Record<LogLevel, number> = {
  trace: 37,
  debug: 37,
  info: 36,
  warn: 33,
  error: 31,
  panic: 31,
  fatal: 31,
};

/** logrus's four-letter level names in text output. */
const TAG: Record<LogLevel, string> = {
  trace: 'TRAC',
  debug: 'DEBU',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERRO',
  panic: 'PANI',
  fatal: 'FATA',
};

export type LogFields = Record<string, string | number | boolean>;

export interface LoggerOptions {
  level?: LogLevel;
  timestamps?: boolean;
  format?: LogFormat;
  /** Colour for the `color` format; the CLI sets it when stderr is a terminal. */
  color?: boolean;
  sink?: (line: string) => void;
}

export class Logger {
  private readonly secrets = new Set<string>();
  level: LogLevel;
  timestamps: boolean;
  readonly format: LogFormat;
  private readonly color: boolean;
  private readonly sink: (line: string) => void;

  constructor(opts: LoggerOptions = {}) {
    this.level = opts.level ?? 'info';
    this.timestamps = opts.timestamps ?? false;
    this.format = opts.format ?? 'text';
    this.color = this.format === 'color' && opts.color === true;
    this.sink = opts.sink ?? ((line) => process.stderr.write(line + '\n'));
  }

  /**
   * Values shorter than 3 characters would redact too much ordinary text; they are still kept out of
   * files by design. A value is also known trimmed (`echo $(cat /run/secrets/x)` drops the newline)
   * and, when it has several lines (a key file), line by line for lines of 8 characters or more.
   */
  addSecret(value: string | undefined): void {
    if (!value) return;
    for (const v of [value, value.trim(), ...value.split(/\r?\n/).map((l) => l.trim())]) {
      if (v.length >= (v === value || v === value.trim() ? 3 : 8)) this.secrets.add(v);
    }
  }

  /** The one secret filter: every path that prints RUN output or errors goes through it. */
  redact(text: string): string {
    let out = text;
    // Longest first: a secret that contains another is replaced whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
    return out;
  }

  /**
   * A redacting writer for a stream of output chunks: a secret split across two chunks is still
   * caught, by holding back the end of each chunk that could be the start of one (at most the
   * longest secret's length - 1 characters) until more output or `end` comes.
   */
  redactingWriter(sink: (chunk: Buffer) => void): { write(chunk: Buffer): void; end(): void } {
    let held = '';
    const decoder = new TextDecoder('utf-8');
    const emit = (text: string): void => {
      if (text !== '') sink(Buffer.from(this.redact(text)));
    };
    return {
      write: (chunk) => {
        const text = held + decoder.decode(chunk, { stream: true });
        const cut = this.safeCut(text);
        held = text.slice(cut);
        emit(text.slice(0, cut));
      },
      end: () => {
        emit(held + decoder.decode());
        held = '';
      },
    };
  }

  /** Where `text` can be cut so that no secret is split and no secret can still start after the cut. */
  private safeCut(text: string): number {
    let cut = text.length;
    for (const s of this.secrets) {
      // A suffix of the text that is a prefix of the secret may be completed by the next chunk.
      const first = s.charCodeAt(0);
      for (let i = Math.max(0, text.length - s.length + 1); i < Math.min(cut, text.length); i++) {
        if (text.charCodeAt(i) === first && s.startsWith(text.slice(i))) {
          cut = i;
          break;
        }
      }
    }
    return cut;
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= ORDER[this.level];
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    const text = this.redact(msg);
    if (this.format === 'json') {
      const safe: LogFields = {};
      for (const [k, v] of Object.entries(fields)) safe[k] = typeof v === 'string' ? this.redact(v) : v;
      // logrus's JSONFormatter keys; extra fields sit beside them.
      this.sink(JSON.stringify({ level, msg: text, time: new Date().toISOString(), ...safe }));
      return;
    }
    const prefix = this.timestamps ? `${new Date().toISOString()} ` : '';
    // kiln's own lines quote input (instructions, names): no raw escape sequences to the terminal.
    const shown = escapeControl(text);
    const tag = this.color
      ? `\x1b[${COLOUR[level]}m${TAG[level]}\x1b[0m `
      : level === 'info'
        ? ''
        : `${level.toUpperCase()} `;
    for (const line of shown.split('\n')) this.sink(`${prefix}${tag}${line}`);
  }

  trace(msg: string): void {
    this.log('trace', msg);
  }
  debug(msg: string): void {
    this.log('debug', msg);
  }
  info(msg: string): void {
    this.log('info', msg);
  }
  warn(msg: string): void {
    this.log('warn', msg);
  }
  error(msg: string): void {
    this.log('error', msg);
  }

  /**
   * A writer for a child's output (RUN steps): passed through as it comes in text formats, one
   * info message per line (`stream` field set) in JSON, so that every line stays one JSON object.
   */
  outputWriter(stream: string, raw: (chunk: Buffer) => void): { write(chunk: Buffer): void; end(): void } {
    if (this.format !== 'json') return { write: raw, end: () => undefined };
    let partial = '';
    return {
      write: (chunk) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) this.log('info', l.replace(/\r$/, ''), { stream });
      },
      end: () => {
        if (partial !== '') this.log('info', partial, { stream });
        partial = '';
      },
    };
  }
}

/** Whether `color` output should use colour on this stream: a terminal, and NO_COLOR unset. */
export function colorFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR ?? '') === '';
}

/** A logger that keeps lines in memory: for tests and for the action's job summary. */
export function memoryLogger(level: LogLevel = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: new Logger({ level, sink: (l) => lines.push(l) }), lines };
}
