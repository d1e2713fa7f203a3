/**
 * Pulls: manifests and indexes by tag or digest, one platform's image from an index, and blobs to a
 * file, into memory or as a stream, each verified against its digest and retried over every pull
 * host (mirrors first). go-containerregistry's `remote` fetcher is the model.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MediaType } from '../image/types.ts';
import type { Descriptor, ImageConfig, Index, Manifest, Platform } from '../image/types.ts';
import { meterStream, NO_METER, shortSubject } from '../log/transfer.ts';
import { KilnError } from '../util/errors.ts';
import { repositoryScope } from './auth.ts';
import { choosePlatform, formatPlatform, platformMatches } from './platform-match.ts';
import { formatReference } from './reference.ts';
import type { Reference } from './reference.ts';
import type { ApiRequest, RegistrySession } from './session.ts';
import { describeError, drain, header, isRetryableError, readBody, sleep } from './transport.ts';
import { digestOf, VerifyStream } from './verify.ts';
import { BlobTee } from './blob-tee.ts';

export const DEFAULT_ACCEPT = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];

const MANIFEST_LIMIT = 16 << 20;
const CONFIG_LIMIT = 64 << 20;
const SUPPORTED_ALGOS = new Set(['sha256', 'sha384', 'sha512']);

/** Errors after which fetching the same thing again can succeed (the wire, not the registry's answer). */
function isRefetchable(e: unknown): boolean {
  return (
    (e instanceof KilnError && (e.code === 'DIGEST_MISMATCH' || e.code === 'BAD_MANIFEST')) ||
    isRetryableError(e)
  );
}

export interface ManifestResult {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

export interface ResolvedImage {
  manifest: Manifest;
  manifestBytes: Buffer;
  digest: string;
  config: ImageConfig;
  configBytes: Buffer;
  mediaType: string;
}

function isIndexType(mediaType: string): boolean {
  return mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList;
}

export class Puller {
  constructor(private readonly session: RegistrySession) {}

  private pullReq(host: string, ref: Reference, path: string, headers?: Record<string, string>): ApiRequest {
    return {
      method: 'GET',
      ref,
      host,
      path,
      ...(headers ? { headers } : {}),
      mode: 'pull',
      scopes: [repositoryScope(ref.repository, false)],
      retries: this.session.opts.pullRetry,
      followRedirects: true,
    };
  }

  /**
   * Fetches a manifest or index by tag or digest, like a blob: verified against the reference's
   * digest or the registry's Docker-Content-Digest, and fetched again after a dropped connection, a
   * short or corrupted body.
   */
  async getManifest(ref: Reference, accept: string[] = DEFAULT_ACCEPT): Promise<ManifestResult> {
    const what = `manifest ${ref.digest ?? ref.tag ?? 'latest'}`;
    return this.retryPull(ref, what, (host, at) => this.getManifestFrom(host, at, ref, accept));
  }

  private async getManifestFrom(
    host: string,
    at: Reference,
    ref: Reference,
    accept: string[],
  ): Promise<ManifestResult> {
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const req = this.pullReq(host, at, `manifests/${reference}`, { accept: accept.join(', ') });
    const res = await this.session.api(req);
    if (res.status === 404) {
      await drain(res);
      throw new KilnError(
        'registry',
        'MANIFEST_UNKNOWN',
        `manifest for ${formatReference(ref)} not found on ${host}`,
        {
          hint: ref.digest
            ? 'check the digest: the registry has no manifest with it in this repository'
            : `check the tag exists: skopeo list-tags docker://${at.registry}/${at.repository}`,
        },
      );
    }
    if (res.status !== 200) {
      throw await this.session.statusError(req, res, `GET manifest ${formatReference(ref)}`);
    }
    const bytes = await readBody(res, MANIFEST_LIMIT);
    // By tag the registry's own digest header is all there is to check the body against.
    const expected = ref.digest ?? header(res, 'docker-content-digest');
    const algo =
      expected && /^[a-z0-9]+:/.test(expected) ? expected.slice(0, expected.indexOf(':')) : 'sha256';
    const digest = digestOf(bytes, SUPPORTED_ALGOS.has(algo) ? algo : 'sha256');
    if (expected && SUPPORTED_ALGOS.has(algo) && digest !== expected) {
      throw new KilnError(
        'registry',
        'DIGEST_MISMATCH',
        `manifest for ${formatReference(ref)} from ${host} has digest ${digest}, expected ${expected} (${bytes.length} bytes read)`,
        {
          hint: ref.digest
            ? 'the manifest was corrupted in transit, or the registry returned different content for the digest (corrupt or compromised)'
            : 'the manifest was corrupted in transit (the registry announced another digest); check proxies between kiln and the registry',
        },
      );
    }
    let mediaType = (header(res, 'content-type') ?? '').split(';')[0]!.trim();
    try {
      const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
      if (typeof parsed.mediaType === 'string' && parsed.mediaType !== '') mediaType = parsed.mediaType;
    } catch {
      throw new KilnError('registry', 'BAD_MANIFEST', `manifest for ${formatReference(ref)} is not JSON`, {
        hint: 'the registry returned something that is not an image manifest',
      });
    }
    return { bytes, mediaType, digest: algo === 'sha256' ? digest : digestOf(bytes) };
  }

  /** Resolves a reference to one platform's manifest and config. */
  async resolveImage(ref: Reference, platform: Platform): Promise<ResolvedImage> {
    let m = await this.getManifest(ref);
    if (isIndexType(m.mediaType)) {
      const chosen = this.chooseFromIndex(ref, m, platform);
      m = await this.getManifest({
        registry: ref.registry,
        repository: ref.repository,
        digest: chosen.digest,
      });
    }
    if (isIndexType(m.mediaType)) {
      throw new KilnError(
        'registry',
        'BAD_MANIFEST',
        `${formatReference(ref)}: an index points to another index`,
        {
          hint: 'nested indexes are not supported; reference a single-platform manifest by digest',
        },
      );
    }
    const manifest = JSON.parse(m.bytes.toString('utf8')) as Manifest;
    if (!manifest.config || typeof manifest.config.digest !== 'string' || !Array.isArray(manifest.layers)) {
      throw new KilnError(
        'registry',
        'BAD_MANIFEST',
        `${formatReference(ref)}: manifest has no config or layers`,
        {
          hint: `media type ${m.mediaType || 'unknown'} is not an image manifest kiln can use`,
        },
      );
    }
    const configBytes = await this.readBlob(ref, manifest.config, CONFIG_LIMIT);
    const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
    if (config.os && config.architecture && !platformMatches(config, { ...platform, variant: undefined })) {
      this.session.logger?.warn(
        `${formatReference(ref)} is ${formatPlatform(config)}, not the requested ${formatPlatform(platform)}`,
      );
    }
    return {
      manifest,
      manifestBytes: m.bytes,
      digest: m.digest,
      config,
      configBytes,
      mediaType: m.mediaType,
    };
  }

  private chooseFromIndex(ref: Reference, m: ManifestResult, platform: Platform): Descriptor {
    const index = JSON.parse(m.bytes.toString('utf8')) as Index;
    const manifests = Array.isArray(index.manifests) ? index.manifests : [];
    const chosen = choosePlatform({ ...index, manifests }, platform);
    if (chosen) return chosen;
    const available = manifests
      .map((d) => d.platform)
      .filter((p): p is Platform => !!p && p.os !== 'unknown' && p.architecture !== 'unknown')
      .map(formatPlatform);
    throw new KilnError(
      'registry',
      'PLATFORM_NOT_FOUND',
      `${formatReference(ref)} has no image for ${formatPlatform(platform)}; available: ${available.join(', ') || 'none'}`,
      {
        hint: `pick one of the available platforms with --platform (e.g. ${available[0] ?? 'linux/amd64'})`,
      },
    );
  }

  /** A small blob (config) into memory, verified, with retries. */
  private async readBlob(ref: Reference, desc: Descriptor, limit: number): Promise<Buffer> {
    if (desc.size > limit) {
      throw new KilnError('registry', 'BLOB_TOO_LARGE', `blob ${desc.digest} is ${desc.size} bytes`, {
        hint: `configs larger than ${limit} bytes are not supported`,
      });
    }
    return this.retryPull(ref, `blob ${desc.digest}`, async (host, at) => {
      const chunks: Buffer[] = [];
      const body = await this.blobStream(host, at, desc);
      await pipeline(
        body,
        new VerifyStream(desc, `blob ${desc.digest} of ${ref.repository}`),
        async (src) => {
          for await (const c of src) chunks.push(c as Buffer);
        },
      );
      return Buffer.concat(chunks);
    });
  }

  /** The body of a blob GET (after redirects), unverified. */
  private async blobStream(host: string, ref: Reference, desc: Descriptor): Promise<Readable> {
    const req = this.pullReq(host, ref, `blobs/${desc.digest}`);
    const res = await this.session.api(req);
    if (res.status === 404) {
      await drain(res);
      throw new KilnError(
        'registry',
        'BLOB_UNKNOWN',
        `blob ${desc.digest} not found in ${ref.registry}/${ref.repository} (${host})`,
        { hint: 'the image references a blob the registry does not have; re-push the image' },
      );
    }
    if (res.status !== 200) throw await this.session.statusError(req, res, `GET blob ${desc.digest}`);
    return res.body;
  }

  /**
   * Retries a whole download (`what`: `blob sha256:…`, `manifest 1`) on dropped connections, short
   * bodies, stalls and digest mismatches, over each pull host.
   */
  private async retryPull<T>(
    ref: Reference,
    what: string,
    fn: (host: string, at: Reference) => Promise<T>,
  ): Promise<T> {
    return this.session.withPullHosts(ref, async (host, at) => {
      const retries = Math.max(0, this.session.opts.pullRetry);
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn(host, at);
        } catch (e) {
          if (!isRefetchable(e) || attempt >= retries) throw this.pullFailure(e, what, host, at, attempt);
          const d = this.session.retryDelay(attempt, e);
          this.session.logger?.warn(
            `${what.slice(0, 24)}: ${e instanceof Error ? e.message : String(e)}; retry ${attempt + 1}/${retries} in ${d} ms`,
          );
          await sleep(d);
        }
      }
    });
  }

  /** The error a download ends with: a KilnError as it is, a network error named for what broke. */
  private pullFailure(e: unknown, what: string, host: string, ref: Reference, attempt: number): KilnError {
    if (e instanceof KilnError) return e;
    const tries = attempt + 1;
    return new KilnError(
      'registry',
      what.startsWith('manifest') ? 'MANIFEST_FETCH_FAILED' : 'BLOB_FETCH_FAILED',
      `downloading ${what} from ${host}/${ref.repository} failed${tries > 1 ? ` ${tries} times` : ''}: ${describeError(e)}`,
      {
        hint: `the connection to ${host} broke while the body was read (dropped, cut short or stalled); check the network and any proxy between kiln and the registry, or raise --image-download-retry`,
        cause: e,
      },
    );
  }

  /**
   * Downloads a blob to `destPath` (through a temp file), verifying size and digest. `reader`, when
   * given, gets the bytes as they arrive as well and ends once they are verified (blob-tee.ts); it
   * is destroyed with the error when the first attempt fails, even when a retry then succeeds (it
   * cannot be fed the same bytes twice): its owner then reads the file.
   */
  async fetchBlob(
    repoRef: Reference,
    descriptor: Descriptor,
    destPath: string,
    reader?: Writable,
  ): Promise<void> {
    // Bytes and rate for the person watching (each attempt counts again from 0).
    const meter = this.session.progress?.begin({
      phase: 'pull',
      subject: shortSubject(repoRef.registry, repoRef.repository),
      blob: descriptor.digest,
      total: descriptor.size,
    });
    let ok = false;
    let tee = reader && new BlobTee(reader);
    try {
      await this.retryPull(repoRef, `blob ${descriptor.digest}`, async (host, at) => {
        const tmp = `${destPath}.partial-${randomBytes(6).toString('hex')}`;
        try {
          const body = await this.blobStream(host, at, descriptor);
          await pipeline(
            body,
            meterStream(meter ?? NO_METER),
            new VerifyStream(descriptor, `blob ${descriptor.digest} of ${repoRef.repository}`),
            ...(tee ? [tee] : []),
            // Large writes: fewer syscalls and thread-pool hops per downloaded MB.
            createWriteStream(tmp, { highWaterMark: 1 << 20 }),
          );
          await rename(tmp, destPath);
        } catch (e) {
          tee?.fail(e);
          tee = undefined;
          await rm(tmp, { force: true });
          throw e;
        }
      });
      ok = true;
    } catch (e) {
      tee?.fail(e);
      throw e;
    } finally {
      meter?.end(ok);
    }
  }

  /** A blob as a stream, verified at the end (the stream errors with DIGEST_MISMATCH). */
  async openBlob(repoRef: Reference, descriptor: Descriptor): Promise<Readable> {
    const body = await this.session.withPullHosts(repoRef, (host, at) =>
      this.blobStream(host, at, descriptor),
    );
    const verify = new VerifyStream(descriptor, `blob ${descriptor.digest} of ${repoRef.repository}`);
    body.on('error', (e) => verify.destroy(e));
    body.pipe(verify);
    return verify;
  }
}
