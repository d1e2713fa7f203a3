/**
 * One blob upload session of the distribution spec: start (or mount from another repository), then
 * a monolithic PUT or chunked PATCHes streamed from the source, then the closing PUT with the digest.
 */
import { Readable } from 'node:stream';
import type { Descriptor } from '../image/types.ts';
import { KilnError } from '../util/errors.ts';
import { repositoryScope } from './auth.ts';
import type { Reference } from './reference.ts';
import { registryApiHost } from './reference.ts';
import type { ApiRequest, RegistrySession } from './session.ts';
import { drain, header } from './transport.ts';
import type { HttpResponse } from './transport.ts';

export type BlobOpener = () => Readable | Promise<Readable>;

export interface UploadSizes {
  /** Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks. */
  monolithicMax: number;
  /** PATCH chunk size for chunked uploads. */
  chunkSize: number;
}

/** Statuses after which the upload session is gone or saw other bytes: restart from scratch. */
function isRejection(status: number): boolean {
  return status === 400 || status === 404 || status === 416;
}

export class Uploader {
  constructor(
    private readonly session: RegistrySession,
    private readonly sizes: UploadSizes,
  ) {}

  pushReq(ref: Reference, extra: Partial<ApiRequest> & { method: string }): ApiRequest {
    return {
      ref,
      host: registryApiHost(ref.registry),
      mode: 'push',
      scopes: [repositoryScope(ref.repository, true)],
      retries: this.session.opts.pushRetry,
      ...extra,
    };
  }

  /** Asks the registry to mount a blob from another repository; when it will not, an upload session. */
  async mountBlob(
    ref: Reference,
    digest: string,
    fromRepo: string,
  ): Promise<{ mounted: boolean; location?: string }> {
    const q = new URLSearchParams({ mount: digest, from: fromRepo });
    const req = this.pushReq(ref, {
      method: 'POST',
      path: `blobs/uploads/?${q}`,
      headers: { 'content-length': '0' },
      scopes: [repositoryScope(ref.repository, true), repositoryScope(fromRepo, false)],
    });
    const res = await this.session.api(req);
    if (res.status === 201) {
      await drain(res);
      this.session.logger?.debug(`mounted ${digest.slice(0, 19)} from ${fromRepo} into ${ref.repository}`);
      return { mounted: true };
    }
    if (res.status === 202) {
      await drain(res);
      return { mounted: false, location: this.location(req, res) };
    }
    throw await this.session.statusError(req, res, `mount ${digest} from ${fromRepo}`);
  }

  private location(req: ApiRequest, res: HttpResponse): string {
    const loc = header(res, 'location');
    if (!loc) {
      throw new KilnError('registry', 'REGISTRY_ERROR', `${req.host} started an upload without a Location`, {
        hint: 'the registry does not follow the distribution spec for uploads',
      });
    }
    return new URL(loc, this.session.apiUrl(req)).toString();
  }

  async startUpload(ref: Reference): Promise<string> {
    const req = this.pushReq(ref, {
      method: 'POST',
      path: 'blobs/uploads/',
      headers: { 'content-length': '0' },
    });
    const res = await this.session.api(req);
    if (res.status !== 202) {
      throw await this.session.statusError(req, res, `start upload to ${ref.repository}`);
    }
    await drain(res);
    return this.location(req, res);
  }

  /** Sends the blob into the session at `location`, in one PUT or in chunks by its size. */
  async upload(ref: Reference, desc: Descriptor, location: string, open: BlobOpener): Promise<void> {
    if (desc.size <= this.sizes.monolithicMax) await this.uploadMonolithic(ref, desc, location, open);
    else await this.uploadChunked(ref, desc, location, open);
  }

  private withDigest(location: string, digest: string): string {
    const u = new URL(location);
    u.searchParams.set('digest', digest);
    return u.toString();
  }

  private async finishUpload(ref: Reference, desc: Descriptor, req: ApiRequest): Promise<void> {
    const res = await this.session.api(req);
    if (res.status === 201 || res.status === 204) {
      await drain(res);
      return;
    }
    const err = await this.session.statusError(req, res, `upload ${desc.digest} to ${ref.repository}`);
    // The registry saw different bytes, or forgot the session: start again.
    if (isRejection(res.status)) {
      throw new KilnError('registry', 'UPLOAD_REJECTED', err.message, { hint: err.hint, cause: err });
    }
    throw err;
  }

  private async uploadMonolithic(
    ref: Reference,
    desc: Descriptor,
    location: string,
    open: BlobOpener,
  ): Promise<void> {
    const body = await open();
    await this.finishUpload(
      ref,
      desc,
      this.pushReq(ref, {
        method: 'PUT',
        url: this.withDigest(location, desc.digest),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
        body,
      }),
    );
  }

  private async uploadChunked(
    ref: Reference,
    desc: Descriptor,
    location: string,
    open: BlobOpener,
  ): Promise<void> {
    const src = await open();
    let offset = 0;
    const slicer = new Slicer(src);
    try {
      while (offset < desc.size && !slicer.ended) {
        const len = Math.min(this.sizes.chunkSize, desc.size - offset);
        location = await this.patchChunk(ref, desc, location, offset, len, slicer);
        offset += len;
      }
      if (!slicer.ended && (await slicer.hasMore())) offset = desc.size + 1;
    } finally {
      src.destroy();
    }
    if (offset !== desc.size) {
      throw new KilnError(
        'internal',
        'BLOB_SIZE_MISMATCH',
        `blob ${desc.digest} read ${offset} bytes, its descriptor says ${desc.size}`,
        { hint: 'the local layer file changed after it was written; rebuild' },
      );
    }
    await this.finishUpload(
      ref,
      desc,
      this.pushReq(ref, {
        method: 'PUT',
        url: this.withDigest(location, desc.digest),
        headers: { 'content-length': '0' },
        body: Buffer.alloc(0),
      }),
    );
  }

  /** One PATCH of `len` bytes at `offset`; returns the next upload location. */
  private async patchChunk(
    ref: Reference,
    desc: Descriptor,
    location: string,
    offset: number,
    len: number,
    slicer: Slicer,
  ): Promise<string> {
    const req = this.pushReq(ref, {
      method: 'PATCH',
      url: location,
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(len),
        'content-range': `${offset}-${offset + len - 1}`,
      },
      body: Readable.from(slicer.slice(len)),
      // A PATCH that failed half-way leaves the session in an unknown state: restart instead.
      retries: 0,
    });
    const res = await this.session.api(req);
    if (res.status !== 202) {
      const err = await this.session.statusError(req, res, `PATCH upload of ${desc.digest}`);
      if (isRejection(res.status)) {
        throw new KilnError('registry', 'UPLOAD_REJECTED', err.message, { hint: err.hint, cause: err });
      }
      throw err;
    }
    await drain(res);
    return this.location(req, res);
  }
}

/** Cuts a stream into consecutive slices of given lengths without assembling any slice in memory. */
class Slicer {
  ended = false;
  private leftover: Buffer | undefined;
  private readonly it: AsyncIterator<Buffer>;

  constructor(src: Readable) {
    this.it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async *slice(len: number): AsyncGenerator<Buffer> {
    let want = len;
    while (want > 0) {
      let b = this.leftover;
      this.leftover = undefined;
      if (!b) {
        const r = await this.it.next();
        if (r.done) {
          this.ended = true;
          return;
        }
        b = r.value;
      }
      if (b.length > want) {
        this.leftover = b.subarray(want);
        b = b.subarray(0, want);
      }
      want -= b.length;
      yield b;
    }
  }

  /** Whether the source has bytes past the slices taken. */
  async hasMore(): Promise<boolean> {
    return this.leftover !== undefined || !(await this.it.next()).done;
  }
}
