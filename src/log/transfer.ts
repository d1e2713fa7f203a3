/**
 * The small typed interface through which pulls, pushes and extractions report bytes moved. The
 * registry and fs code only see `TransferProgress` (begin a blob, update its count, end it); what a
 * person or a tool sees (a live bar, periodic lines, JSON events) is decided by the one renderer
 * the CLI picks (transfer-board.ts). Nothing here writes anything.
 */
import { Transform } from 'node:stream';

export type TransferPhase = 'pull' | 'push' | 'extract';

export interface TransferStart {
  phase: TransferPhase;
  /** What the blob belongs to, as a person names it: a repository (`127.0.0.1:5000/base/debian`). */
  subject: string;
  /** The blob's digest. */
  blob: string;
  /** Its size in bytes (compressed, as it travels). */
  total: number;
}

export interface TransferMeter {
  /** Bytes moved so far in this attempt (a retry starts again from 0). */
  update(done: number): void;
  /** The blob is finished (`ok`) or given up. Later calls do nothing. */
  end(ok: boolean): void;
}

export interface TransferProgress {
  begin(t: TransferStart): TransferMeter;
}

/** The meter of nobody listening. */
export const NO_METER: TransferMeter = { update: () => undefined, end: () => undefined };

/** A pass-through stream that tells `meter` how many bytes went through it (from 0). */
export function meterStream(meter: TransferMeter): Transform {
  let done = 0;
  meter.update(0);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      meter.update(done);
      cb(null, chunk);
    },
  });
}

/** `docker.io/library/debian` → `debian`: the name a person typed, for progress lines. */
export function shortSubject(registry: string, repository: string): string {
  const hub = ['docker.io', 'index.docker.io', 'registry-1.docker.io'].includes(registry);
  if (!hub) return `${registry}/${repository}`;
  return repository.startsWith('library/') ? repository.slice('library/'.length) : repository;
}
