/**
 * zstd through the `zstd` binary: Node has no zstd codec before v22, so layers are piped through
 * a child process. The stream only ends once the process has exited cleanly, so a truncated or
 * corrupt input is an error and never a silently short layer.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Duplex } from 'node:stream';
import { KilnError } from '../util/errors.ts';

class ProcessDuplex extends Duplex {
  private readonly child: ChildProcessWithoutNullStreams;
  private stderr = '';

  constructor(args: string[], what: string) {
    super();
    this.child = spawn('zstd', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const child = this.child;
    child.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      if (!this.push(d)) child.stdout.pause();
    });
    // A write after the process died: the exit status below tells why.
    child.stdin.on('error', () => undefined);
    child.on('error', (err: NodeJS.ErrnoException) => {
      this.destroy(
        new KilnError('fs', 'ZSTD_UNAVAILABLE', `cannot run zstd to ${what}: ${err.message}`, {
          hint: 'install the zstd package, or use gzip compression',
          cause: err,
        }),
      );
    });
    child.on('close', (code, signal) => {
      if (code === 0) this.push(null);
      else if (!this.destroyed) {
        this.destroy(
          new KilnError(
            'fs',
            'ZSTD_FAILED',
            `zstd failed to ${what} (${signal ?? `exit ${code}`}): ${this.stderr.trim().split('\n')[0] ?? ''}`,
            { hint: 'the layer is corrupt or truncated' },
          ),
        );
      }
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.child.stdin.write(chunk)) cb();
    else this.child.stdin.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end();
    cb();
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    cb(err);
  }
}

/** A duplex that decompresses zstd (`zstd -dc`). */
export function zstdDecompress(): Duplex {
  return new ProcessDuplex(['-d', '-c', '-q'], 'decompress a layer');
}

/** A duplex that compresses with zstd at `level` (clamped to 1..22). */
export function zstdCompress(level: number): Duplex {
  const l = Math.max(1, Math.min(22, Math.round(level) || 3));
  return new ProcessDuplex(
    [...(l > 19 ? ['--ultra'] : []), `-${l}`, '-c', '-q', '--no-progress'],
    'compress a layer',
  );
}
