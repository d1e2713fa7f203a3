/**
 * A download's bytes handed to a second reader as they arrive (the base extraction), while the blob
 * is still written to its file. Put after the digest check in the download's pipeline: the reader's
 * stream ends only once the whole blob has been verified, and errors when the download fails, so a
 * reader that saw `end` has exactly the blob's bytes (what Kaniko's streamed layers and
 * go-containerregistry's verifying readers give). The download waits while the reader is full, so
 * at most a few chunks are ever held; a reader that goes away stops being fed and the download
 * goes on to the file alone.
 */
import { Transform, type TransformCallback, type Writable } from 'node:stream';

export class BlobTee extends Transform {
  constructor(private readonly reader: Writable) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const r = this.reader;
    if (r.destroyed || r.writableEnded || r.write(chunk)) {
      cb(null, chunk);
      return;
    }
    const go = (): void => {
      r.off('drain', go);
      r.off('close', go);
      cb(null, chunk);
    };
    r.on('drain', go);
    r.on('close', go);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.reader.destroyed) this.reader.end();
    cb();
  }

  /** The download failed (or will be tried again from its first byte): the reader must not go on. */
  fail(err: unknown): void {
    if (!this.reader.destroyed) this.reader.destroy(err instanceof Error ? err : new Error(String(err)));
  }
}
