/**
 * ADD <https URL>: downloads to a temp file with the digest checked while streaming, and reports
 * the name and mtime Docker gives the result (last path segment; Last-Modified when sent).
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { posix, join } from 'node:path';
import { Transform } from 'node:stream';
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { KilnError, type SourcePosition } from '../util/errors.ts';

export interface FetchedUrl {
  path: string;
  /** File name Docker would use when the destination is a directory. */
  name: string;
  mtime?: Date;
  digest: string;
  size: number;
}

const MAX_REDIRECTS = 10;

export async function fetchUrl(
  url: string,
  tmpDir: string,
  opts: { checksum?: string; position?: SourcePosition; signal?: AbortSignal } = {},
): Promise<FetchedUrl> {
  if (opts.checksum && !/^sha(256|384|512):[a-f0-9]+$/.test(opts.checksum)) {
    throw new KilnError('dockerfile', 'BAD_CHECKSUM', `invalid --checksum "${opts.checksum}"`, {
      position: opts.position,
      hint: 'use --checksum=sha256:<64 hex digits>',
    });
  }
  let current = new URL(url);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    let res;
    try {
      res = await request(current, { method: 'GET', signal: opts.signal });
    } catch (e) {
      throw new KilnError('context', 'URL_UNREACHABLE', `ADD ${url}: ${(e as Error).message}`, {
        position: opts.position,
        cause: e,
        hint: 'check the URL and that the build host can reach it',
      });
    }
    if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
      await res.body.dump();
      current = new URL(String(res.headers.location), current);
      continue;
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new KilnError('context', 'URL_FAILED', `ADD ${url}: HTTP ${res.statusCode}`, {
        position: opts.position,
        hint: 'the server did not return the file; check the URL',
      });
    }
    const dir = await mkdtemp(join(tmpDir, 'add-url-'));
    const segment = posix.basename(decodeURIComponent(new URL(url).pathname)) || 'index.html';
    const path = join(dir, 'download');
    const algo = opts.checksum?.split(':')[0] ?? 'sha256';
    const hash = createHash(algo);
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    await pipeline(res.body, meter, createWriteStream(path));
    const digest = `${algo}:${hash.digest('hex')}`;
    if (opts.checksum && opts.checksum !== digest) {
      throw new KilnError(
        'context',
        'CHECKSUM_MISMATCH',
        `ADD ${url}: checksum mismatch: expected ${opts.checksum}, got ${digest}`,
        {
          position: opts.position,
          hint: 'the remote file changed or the --checksum is wrong',
        },
      );
    }
    const lm = res.headers['last-modified'];
    const mtime = typeof lm === 'string' && !Number.isNaN(Date.parse(lm)) ? new Date(lm) : undefined;
    return { path, name: segment, mtime, digest, size };
  }
  throw new KilnError('context', 'URL_REDIRECTS', `ADD ${url}: more than ${MAX_REDIRECTS} redirects`, {
    position: opts.position,
  });
}
