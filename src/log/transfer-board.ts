/**
 * What a person or a tool sees of pulls, pushes and extractions. Blobs are grouped by phase and
 * subject (`pull 127.0.0.1:5000/base/debian`), and shown one of three ways:
 *  - `tty`: a live status line redrawn in place (`pull debian [####------] 34.1/52.0 MiB 12.3 MiB/s`),
 *  - `plain`: for CI logs and pipes, a line per group every interval (5 s) or each quarter of its
 *    bytes, never per chunk,
 *  - `json`: only events, one JSON object per line (`type: progress`, phase, blob, done, total),
 *    at the same pace per blob, plus its start and its end.
 * In every mode a group that ends says so once, with its size, time and rate. Blobs under 256 KiB
 * (configs, signatures) are not shown: they take no time worth following.
 */
import type { Logger } from './logger.ts';
import type { StatusLine } from './status-line.ts';
import { NO_METER } from './transfer.ts';
import type { TransferMeter, TransferPhase, TransferProgress, TransferStart } from './transfer.ts';

export type BoardMode = 'tty' | 'plain' | 'json';

export interface BoardOptions {
  mode: BoardMode;
  logger: Logger;
  /** The terminal's status line (`tty` mode). */
  status?: StatusLine;
  /** Periodic lines and events at most this often per group or blob (default 5000 ms). */
  intervalMs?: number;
  /** Smaller blobs are not shown (default 256 KiB). */
  minBytes?: number;
  now?: () => number;
}

interface BlobState {
  readonly start: TransferStart;
  readonly t0: number;
  done: number;
  ended: boolean;
  ok: boolean;
  lastEvent: number;
  quarter: number;
}

interface Group {
  readonly key: string;
  readonly phase: TransferPhase;
  readonly subject: string;
  readonly t0: number;
  readonly blobs: BlobState[];
  lastLine: number;
  quarter: number;
}

const PAST: Record<TransferPhase, string> = { pull: 'pulled', push: 'pushed', extract: 'extracted' };
const MIB = 1 << 20;

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= MIB) return `${(n / MIB).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

/** `34.1/52.0 MiB`: both in the unit of the total. */
function formatPair(done: number, total: number): string {
  const [div, unit] = total >= 1 << 30 ? [1 << 30, 'GiB'] : total >= MIB ? [MIB, 'MiB'] : [1024, 'KiB'];
  const d = total >= 1 << 30 ? 2 : 1;
  return `${(done / div).toFixed(d)}/${(total / div).toFixed(d)} ${unit}`;
}

export function formatRate(bytes: number, ms: number): string {
  return `${formatBytes(ms > 0 ? (bytes * 1000) / ms : 0)}/s`;
}

function formatSeconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

const quarterOf = (done: number, total: number): number =>
  total > 0 ? Math.min(4, Math.floor((done * 4) / total)) : 4;

export class TransferBoard implements TransferProgress {
  private readonly groups = new Map<string, Group>();
  private readonly intervalMs: number;
  private readonly minBytes: number;
  private readonly now: () => number;

  constructor(private readonly o: BoardOptions) {
    this.intervalMs = o.intervalMs ?? 5000;
    this.minBytes = o.minBytes ?? 256 << 10;
    this.now = o.now ?? Date.now;
  }

  begin(start: TransferStart): TransferMeter {
    if (start.total < this.minBytes) return NO_METER;
    const t = this.now();
    const key = `${start.phase} ${start.subject}`;
    let g = this.groups.get(key);
    if (!g) {
      g = { key, phase: start.phase, subject: start.subject, t0: t, blobs: [], lastLine: t, quarter: 0 };
      this.groups.set(key, g);
    }
    const b: BlobState = { start, t0: t, done: 0, ended: false, ok: false, lastEvent: t, quarter: 0 };
    g.blobs.push(b);
    const group = g;
    if (this.o.mode === 'json') this.event(b, 'start');
    else if (this.o.mode === 'tty') this.draw(true);
    return { update: (d) => this.update(group, b, d), end: (ok) => this.end(group, b, ok) };
  }

  private update(g: Group, b: BlobState, done: number): void {
    if (b.ended) return;
    b.done = done;
    const t = this.now();
    if (this.o.mode === 'tty') {
      this.draw(false);
      return;
    }
    if (this.o.mode === 'json') {
      const q = quarterOf(b.done, b.start.total);
      if ((q > b.quarter && q < 4) || t - b.lastEvent >= this.intervalMs) {
        b.quarter = Math.max(b.quarter, q);
        b.lastEvent = t;
        this.event(b, 'progress');
      }
      return;
    }
    const { done: gd, total } = totals(g);
    const q = quarterOf(gd, total);
    if ((q > g.quarter && q < 4) || t - g.lastLine >= this.intervalMs) {
      g.quarter = Math.max(g.quarter, q);
      g.lastLine = t;
      this.o.logger.info(
        `${g.phase} ${g.subject}: ${formatPair(gd, total)} (${Math.floor((gd * 100) / total)}%) ${formatRate(gd, t - g.t0)}`,
      );
    }
  }

  private end(g: Group, b: BlobState, ok: boolean): void {
    if (b.ended) return;
    b.ended = true;
    b.ok = ok;
    if (ok) b.done = b.start.total;
    if (this.o.mode === 'json') this.event(b, ok ? 'done' : 'failed');
    if (!g.blobs.every((x) => x.ended)) {
      if (this.o.mode === 'tty') this.draw(true);
      return;
    }
    this.groups.delete(g.key);
    const ms = this.now() - g.t0;
    const { done, total } = totals(g);
    const failed = g.blobs.some((x) => !x.ok);
    const msg = failed
      ? `${g.phase} ${g.subject}: stopped at ${formatPair(done, total)}`
      : `${PAST[g.phase]} ${g.subject}: ${formatBytes(total)} in ${formatSeconds(ms)} (${formatRate(total, ms)})`;
    if (this.o.mode === 'tty') this.draw(true);
    // In JSON the blob events already said it; a summary event per group, for tools that sum.
    if (this.o.mode === 'json') {
      this.o.logger.log('info', msg, {
        type: 'progress-summary',
        phase: g.phase,
        subject: g.subject,
        blobs: g.blobs.length,
        total,
        durationMs: ms,
        ok: !failed,
      });
    } else this.o.logger.info(msg);
  }

  private event(b: BlobState, status: 'start' | 'progress' | 'done' | 'failed'): void {
    const { phase, subject, blob, total } = b.start;
    this.o.logger.log('info', `${phase} ${blob.slice(0, 19)}: ${formatPair(b.done, total)}`, {
      type: 'progress',
      phase,
      subject,
      blob,
      done: b.done,
      total,
      status,
      ...(status === 'done' || status === 'failed' ? { durationMs: this.now() - b.t0 } : {}),
    });
  }

  /** The status line: every group in flight, with a bar when there is only one. */
  private draw(force: boolean): void {
    const t = this.now();
    const parts = [...this.groups.values()].map((g) => {
      const { done, total } = totals(g);
      const bar = this.groups.size === 1 ? ` ${barOf(done, total)}` : '';
      return `${g.phase} ${g.subject}:${bar} ${formatPair(done, total)} ${formatRate(done, t - g.t0)}`;
    });
    this.o.status?.set(parts.join('  '), force);
  }

  /** Takes the live line away (the build ended or failed). */
  close(): void {
    this.o.status?.clear();
  }
}

function totals(g: Group): { done: number; total: number } {
  let done = 0;
  let total = 0;
  for (const b of g.blobs) {
    done += Math.min(b.done, b.start.total);
    total += b.start.total;
  }
  return { done, total };
}

function barOf(done: number, total: number): string {
  const n = total > 0 ? Math.round((done * 20) / total) : 20;
  return `[${'#'.repeat(n)}${'-'.repeat(20 - n)}]`;
}
