/** Digest and size checks of what comes off the wire (blobs as streams, manifests as buffers). */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import type { Descriptor } from '../image/types.ts';
import { KilnError } from '../util/errors.ts';

export function digestOf(bytes: Buffer, algo = 'sha256'): string {
  return `${algo}:${createHash(algo).update(bytes).digest('hex')}`;
}

export function mismatch(what: string, desc: Descriptor, got: string): KilnError {
  return new KilnError(
    'registry',
    'DIGEST_MISMATCH',
    `${what}: expected ${desc.digest} (${desc.size} bytes), got ${got}`,
    {
      hint: 'the data was corrupted in transit or the registry serves a wrong blob; retry, or check the registry',
    },
  );
}

/** Verifies size and sha256 of what flows through; emits a DIGEST_MISMATCH error at the end. */
export class VerifyStream extends Transform {
  private readonly hash;
  private size = 0;
  constructor(
    private readonly desc: Descriptor,
    private readonly what: string,
  ) {
    super();
    this.hash = createHash(desc.digest.slice(0, desc.digest.indexOf(':')) || 'sha256');
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.desc.size) {
      cb(mismatch(this.what, this.desc, `more than ${this.desc.size} bytes`));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    const algo = this.desc.digest.slice(0, this.desc.digest.indexOf(':'));
    const got = `${algo}:${this.hash.digest('hex')}`;
    if (this.size !== this.desc.size) cb(mismatch(this.what, this.desc, `${this.size} bytes`));
    else if (got !== this.desc.digest) cb(mismatch(this.what, this.desc, got));
    else cb();
  }
}
