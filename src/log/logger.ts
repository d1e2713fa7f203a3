/**
 * One logger for the whole build. Secrets registered with `addSecret` are replaced by `***` in
 * every line, whatever the level, before anything reaches the sink.
 */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';

const ORDER: Record<LogLevel, number> = {
  trace: 0,
  debug: 1,
  info: 2,
  warn: 3,
  error: 4,
  panic: 5,
  fatal: 6,
};

export interface LoggerOptions {
  level?: LogLevel;
  timestamps?: boolean;
  sink?: (line: string) => void;
}

export class Logger {
  private readonly secrets = new Set<string>();
  level: LogLevel;
  timestamps: boolean;
  private readonly sink: (line: string) => void;

  constructor(opts: LoggerOptions = {}) {
    this.level = opts.level ?? 'info';
    this.timestamps = opts.timestamps ?? false;
    this.sink = opts.sink ?? ((line) => process.stderr.write(line + '\n'));
  }

  /** Values shorter than 3 characters would redact too much ordinary text; they are still kept out of files by design. */
  addSecret(value: string | undefined): void {
    if (value && value.length >= 3) this.secrets.add(value);
  }

  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join('***');
    return out;
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= ORDER[this.level];
  }

  log(level: LogLevel, msg: string): void {
    if (!this.enabled(level)) return;
    const prefix = this.timestamps ? `${new Date().toISOString()} ` : '';
    const tag = level === 'info' ? '' : `${level.toUpperCase()} `;
    for (const line of this.redact(msg).split('\n')) this.sink(`${prefix}${tag}${line}`);
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
}

/** A logger that keeps lines in memory: for tests and for the action's job summary. */
export function memoryLogger(level: LogLevel = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: new Logger({ level, sink: (l) => lines.push(l) }), lines };
}
