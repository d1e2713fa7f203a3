/**
 * kiln's OCI distribution client: manifest and blob pulls with digest verification, platform
 * selection from indexes, and pushes (cross-repo mount, monolithic or chunked uploads) that only
 * write a manifest once every blob it references is verified present.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { RegistryOptions } from './options.ts';
import type { Logger } from '../log/logger.ts';
import { MediaType } from '../image/types.ts';
import type {
  BuiltImage,
  Descriptor,
  ImageConfig,
  Index,
  LayerBlob,
  Manifest,
  Platform,
} from '../image/types.ts';
import { KilnError } from '../util/errors.ts';
import { Authenticator, registryMessage, repositoryScope } from './auth.ts';
import type { CredentialStore } from './credentials.ts';
import { formatReference, normalizeRegistry, registryApiHost } from './reference.ts';
import type { Reference } from './reference.ts';
import {
  describeError,
  drain,
  header,
  isRetryableError,
  readBody,
  safeUrl,
  sleep,
  stripScheme,
  Transport,
} from './transport.ts';
import type { HttpResponse, Mode, RequestBody } from './transport.ts';

export const DEFAULT_ACCEPT = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];

const MANIFEST_LIMIT = 16 << 20;
const CONFIG_LIMIT = 64 << 20;
const MAX_REDIRECTS = 10;
const PUSH_CONCURRENCY = 3;

export interface RegistryClientOptions {
  registry: RegistryOptions;
  credentials: CredentialStore;
  logger?: Logger;
  /** First retry delay (default 500 ms); tests shorten it. */
  baseDelayMs?: number;
  /** Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks. Default 8 MiB. */
  monolithicMaxBytes?: number;
  /** PATCH chunk size for chunked uploads. Default 64 MiB. */
  chunkSizeBytes?: number;
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

export type PushBlobResult = 'exists' | 'mounted' | 'uploaded';

export type BlobOpener = () => Readable | Promise<Readable>;

interface ApiRequest {
  method: string;
  ref: Reference;
  /** API host to talk to (a mirror or the registry's API host). */
  host: string;
  /** Path below /v2/<repository>/, e.g. `manifests/latest`. */
  path?: string;
  /** Absolute URL (upload locations); overrides path. */
  url?: string;
  headers?: Record<string, string>;
  body?: RequestBody;
  mode: Mode;
  scopes: string[];
  retries: number;
  followRedirects?: boolean;
}

function isIndexType(mediaType: string): boolean {
  return mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList;
}

function digestOf(bytes: Buffer, algo = 'sha256'): string {
  return `${algo}:${createHash(algo).update(bytes).digest('hex')}`;
}

/** `amd64`, `arm64`, `arm` etc. from the aliases people and uname use. */
export function normalizeArch(arch: string): string {
  switch (arch.toLowerCase()) {
    case 'x86_64':
    case 'x86-64':
    case 'x64':
      return 'amd64';
    case 'aarch64':
      return 'arm64';
    case 'armhf':
      return 'arm';
    case 'i386':
    case 'i686':
    case 'ia32':
      return '386';
    default:
      return arch.toLowerCase();
  }
}

/** The variant with the architecture's default filled in: arm64 → v8, arm → v7. */
function normalizeVariant(arch: string, variant: string | undefined): string | undefined {
  const v = variant?.toLowerCase();
  if (arch === 'arm64') return v === undefined || v === '' || v === '8' ? 'v8' : v;
  if (arch === 'arm') return v === undefined || v === '' ? 'v7' : /^\d$/.test(v) ? `v${v}` : v;
  return v === '' ? undefined : v;
}

export function formatPlatform(p: Partial<Platform>): string {
  return [p.os ?? 'unknown', p.architecture ?? 'unknown', p.variant].filter(Boolean).join('/');
}

/** Whether an index entry's platform satisfies the wanted one (variant only compared when wanted). */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os) return false;
  const a = normalizeArch(have.architecture);
  if (a !== normalizeArch(want.architecture)) return false;
  if (want.variant === undefined || want.variant === '') return true;
  return normalizeVariant(a, have.variant) === normalizeVariant(a, want.variant);
}

/** Picks the manifest for a platform from an index; undefined when none matches. */
export function choosePlatform(index: Index, want: Platform): Descriptor | undefined {
  const matches = index.manifests.filter((m) => platformMatches(m.platform, want));
  if (matches.length <= 1) return matches[0];
  // Several variants match when none was asked for: prefer the architecture's default variant.
  const arch = normalizeArch(want.architecture);
  const def = normalizeVariant(arch, undefined);
  return matches.find((m) => normalizeVariant(arch, m.platform?.variant) === def) ?? matches[0];
}

/** Verifies size and sha256 of what flows through; emits a DIGEST_MISMATCH error at the end. */
class VerifyStream extends Transform {
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

function mismatch(what: string, desc: Descriptor, got: string): KilnError {
  return new KilnError(
    'registry',
    'DIGEST_MISMATCH',
    `${what}: expected ${desc.digest} (${desc.size} bytes), got ${got}`,
    {
      hint: 'the data was corrupted in transit or the registry serves a wrong blob; retry, or check the registry',
    },
  );
}

async function runPool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

export class RegistryClient {
  readonly transport: Transport;
  private readonly auth: Authenticator;
  private readonly opts: RegistryOptions;
  private readonly logger: Logger | undefined;
  private readonly monolithicMax: number;
  private readonly chunkSize: number;

  constructor(opts: RegistryClientOptions) {
    this.opts = opts.registry;
    this.logger = opts.logger;
    this.transport = new Transport({
      registry: opts.registry,
      logger: opts.logger,
      baseDelayMs: opts.baseDelayMs,
    });
    this.auth = new Authenticator({
      transport: this.transport,
      credentials: opts.credentials,
      explicit: opts.registry.credentials,
      logger: opts.logger,
      retries: opts.registry.pullRetry,
    });
    this.monolithicMax = opts.monolithicMaxBytes ?? 8 << 20;
    // Each PATCH streams from the source, so a large chunk costs no memory, only fewer round trips.
    this.chunkSize = opts.chunkSizeBytes ?? 64 << 20;
  }

  /** Closes pooled connections. */
  async close(): Promise<void> {
    await this.transport.close();
  }

  // ---------------------------------------------------------------- plumbing

  /** Hosts to pull from, in order: docker.io mirrors, registry-map mirrors, then the source. */
  pullHosts(ref: Reference): string[] {
    const hosts: string[] = [];
    const reg = normalizeRegistry(ref.registry);
    const hostOnly = (m: string): string => stripScheme(m).split('/')[0] ?? m;
    if (reg === 'docker.io') hosts.push(...this.opts.mirrors.map(hostOnly));
    for (const [from, to] of Object.entries(this.opts.registryMap)) {
      if (normalizeRegistry(stripScheme(from)) === reg) hosts.push(...to.map(hostOnly));
    }
    if (!this.opts.skipDefaultRegistryFallback || hosts.length === 0)
      hosts.push(registryApiHost(ref.registry));
    return [...new Set(hosts.filter((h) => h !== ''))];
  }

  private pushHost(ref: Reference): string {
    return registryApiHost(ref.registry);
  }

  /** Runs `fn` against each pull host in turn until one succeeds. */
  private async withPullHosts<T>(ref: Reference, fn: (host: string) => Promise<T>): Promise<T> {
    const hosts = this.pullHosts(ref);
    let last: unknown;
    for (let i = 0; i < hosts.length; i++) {
      try {
        return await fn(hosts[i]!);
      } catch (e) {
        last = e;
        if (i < hosts.length - 1) {
          this.logger?.warn(
            `mirror ${hosts[i]} failed for ${formatReference(ref)}: ${e instanceof Error ? e.message : String(e)}; trying ${hosts[i + 1]}`,
          );
        }
      }
    }
    throw last;
  }

  private apiUrl(req: ApiRequest): string {
    return (
      req.url ?? `${this.transport.baseUrl(req.host, req.mode)}/v2/${req.ref.repository}/${req.path ?? ''}`
    );
  }

  /**
   * One registry API call with auth (challenge, token, one re-authentication after a 401), status
   * retries for replayable bodies, and manual redirects that never carry Authorization to another
   * origin. A final 401/403 becomes UNAUTHORIZED/DENIED.
   */
  private async api(req: ApiRequest): Promise<HttpResponse> {
    const url = this.apiUrl(req);
    const replayable = req.body === undefined || typeof req.body === 'string' || Buffer.isBuffer(req.body);
    let auth = await this.auth.header(req.host, req.scopes);
    let res: HttpResponse;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...req.headers };
      if (auth) headers.authorization = auth;
      res = await this.transport.send(
        { method: req.method, url, headers, body: req.body, mode: req.mode },
        req.retries,
      );
      if (res.status !== 401) break;
      const body = await readBody(res, 1 << 20).catch(() => Buffer.alloc(0));
      if (attempt > 0) throw await this.authError(req, res, body);
      const next = await this.auth.onUnauthorized(req.host, req.scopes, header(res, 'www-authenticate'));
      if (next === undefined || (next === auth && !replayable)) throw await this.authError(req, res, body);
      if (!replayable) {
        // The streamed body is spent: make the caller restart with the fresh token.
        throw new KilnError(
          'registry',
          'REGISTRY_UNAVAILABLE',
          `${req.method} ${safeUrl(url)}: authorization expired during the request`,
          { hint: 'retried automatically' },
        );
      }
      auth = next;
    }
    if (res.status === 403) {
      const body = await readBody(res, 1 << 20).catch(() => Buffer.alloc(0));
      throw await this.authError(req, res, body);
    }
    if (req.followRedirects) return this.followRedirects(req, res, url, auth);
    return res;
  }

  private async followRedirects(
    req: ApiRequest,
    first: HttpResponse,
    firstUrl: string,
    auth: string | undefined,
  ): Promise<HttpResponse> {
    let res = first;
    let url = firstUrl;
    let method = req.method;
    const origin = new URL(firstUrl).origin;
    for (let n = 0; [301, 302, 303, 307, 308].includes(res.status); n++) {
      const loc = header(res, 'location');
      await drain(res);
      if (!loc || n >= MAX_REDIRECTS) {
        throw new KilnError(
          'registry',
          'BAD_REDIRECT',
          `${req.method} ${safeUrl(firstUrl)}: too many or empty redirects`,
          {
            hint: 'the registry or its storage backend redirects in a loop',
          },
        );
      }
      url = new URL(loc, url).toString();
      if (res.status === 303) method = 'GET';
      const headers: Record<string, string> = { ...req.headers };
      // Blob storage (S3, GCS, CDNs) gets no registry credentials.
      if (auth && new URL(url).origin === origin) headers.authorization = auth;
      this.logger?.debug(`${method} redirected to ${safeUrl(url)}`);
      res = await this.transport.send({ method, url, headers, mode: req.mode }, req.retries);
    }
    return res;
  }

  private async authError(req: ApiRequest, res: HttpResponse, body: Buffer): Promise<KilnError> {
    const cred = await this.auth.credential(req.host).catch(() => null);
    const msg = this.auth.redact(registryMessage(body), cred);
    const what = `${req.method} ${formatReference(req.ref)}${req.path ? ` (${req.path.split('?')[0]})` : ''}`;
    const denied = res.status === 403;
    const who = cred?.username
      ? ` as ${cred.username}`
      : cred
        ? ' with the configured token'
        : ' anonymously';
    return new KilnError(
      'registry',
      denied ? 'DENIED' : 'UNAUTHORIZED',
      `${req.host} ${denied ? 'denied' : 'did not authorize'} ${what}${who}${msg ? `: ${msg}` : ''}`,
      {
        hint: denied
          ? `the account has no ${req.mode === 'push' ? 'push' : 'pull'} access to ${req.ref.repository}: check its permissions`
          : `check the credentials for ${req.ref.registry} (docker login, the Docker config, or explicit credentials)`,
      },
    );
  }

  /** An error for an unexpected status, with the registry's own message. */
  private async statusError(req: ApiRequest, res: HttpResponse, what: string): Promise<KilnError> {
    const body =
      req.method === 'HEAD' ? Buffer.alloc(0) : await readBody(res, 1 << 20).catch(() => Buffer.alloc(0));
    const msg = this.auth.redact(registryMessage(body));
    const retryable = res.status === 429 || res.status >= 500;
    return new KilnError(
      'registry',
      retryable ? 'REGISTRY_UNAVAILABLE' : 'REGISTRY_ERROR',
      `${what}: ${req.host} answered HTTP ${res.status}${msg ? `: ${msg}` : ''}`,
      {
        hint: retryable
          ? `the registry is overloaded or failing; retry later (retries: ${req.retries})`
          : 'the registry rejected the request; check the reference and the registry logs',
      },
    );
  }

  // ---------------------------------------------------------------- pull

  /** Fetches a manifest or index by tag or digest, verifying the digest when the reference has one. */
  async getManifest(ref: Reference, accept: string[] = DEFAULT_ACCEPT): Promise<ManifestResult> {
    return this.withPullHosts(ref, (host) => this.getManifestFrom(host, ref, accept));
  }

  private async getManifestFrom(host: string, ref: Reference, accept: string[]): Promise<ManifestResult> {
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const req: ApiRequest = {
      method: 'GET',
      ref,
      host,
      path: `manifests/${reference}`,
      headers: { accept: accept.join(', ') },
      mode: 'pull',
      scopes: [repositoryScope(ref.repository, false)],
      retries: this.opts.pullRetry,
      followRedirects: true,
    };
    const res = await this.api(req);
    if (res.status === 404) {
      await drain(res);
      throw new KilnError(
        'registry',
        'MANIFEST_UNKNOWN',
        `manifest for ${formatReference(ref)} not found on ${host}`,
        {
          hint: ref.digest
            ? 'check the digest: the registry has no manifest with it in this repository'
            : `check the tag exists: skopeo list-tags docker://${ref.registry}/${ref.repository}`,
        },
      );
    }
    if (res.status !== 200) throw await this.statusError(req, res, `GET manifest ${formatReference(ref)}`);
    const bytes = await readBody(res, MANIFEST_LIMIT);
    const algo = ref.digest ? ref.digest.slice(0, ref.digest.indexOf(':')) : 'sha256';
    const digest = digestOf(bytes, algo);
    if (ref.digest && digest !== ref.digest) {
      throw new KilnError(
        'registry',
        'DIGEST_MISMATCH',
        `manifest for ${formatReference(ref)} from ${host} has digest ${digest}`,
        { hint: 'the registry returned different content for the digest; it may be corrupt or compromised' },
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
      const index = JSON.parse(m.bytes.toString('utf8')) as Index;
      const manifests = Array.isArray(index.manifests) ? index.manifests : [];
      const chosen = choosePlatform({ ...index, manifests }, platform);
      if (!chosen) {
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
      this.logger?.warn(
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

  /** A small blob (config) into memory, verified, with retries. */
  private async readBlob(ref: Reference, desc: Descriptor, limit: number): Promise<Buffer> {
    if (desc.size > limit) {
      throw new KilnError('registry', 'BLOB_TOO_LARGE', `blob ${desc.digest} is ${desc.size} bytes`, {
        hint: `configs larger than ${limit} bytes are not supported`,
      });
    }
    return this.retryPull(ref, desc, async (host) => {
      const chunks: Buffer[] = [];
      const body = await this.blobStream(host, ref, desc);
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
    const req: ApiRequest = {
      method: 'GET',
      ref,
      host,
      path: `blobs/${desc.digest}`,
      mode: 'pull',
      scopes: [repositoryScope(ref.repository, false)],
      retries: this.opts.pullRetry,
      followRedirects: true,
    };
    const res = await this.api(req);
    if (res.status === 404) {
      await drain(res);
      throw new KilnError(
        'registry',
        'BLOB_UNKNOWN',
        `blob ${desc.digest} not found in ${ref.registry}/${ref.repository} (${host})`,
        { hint: 'the image references a blob the registry does not have; re-push the image' },
      );
    }
    if (res.status !== 200) throw await this.statusError(req, res, `GET blob ${desc.digest}`);
    return res.body;
  }

  /** Retries a whole blob download on network errors and digest mismatches, over each pull host. */
  private async retryPull<T>(ref: Reference, desc: Descriptor, fn: (host: string) => Promise<T>): Promise<T> {
    return this.withPullHosts(ref, async (host) => {
      const retries = Math.max(0, this.opts.pullRetry);
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn(host);
        } catch (e) {
          const again = (e instanceof KilnError && e.code === 'DIGEST_MISMATCH') || isRetryableError(e);
          if (!again || attempt >= retries) {
            if (e instanceof KilnError) throw e;
            throw new KilnError(
              'registry',
              'BLOB_FETCH_FAILED',
              `downloading ${desc.digest} from ${host}/${ref.repository} failed: ${describeError(e)}`,
              { hint: 'check the network connection to the registry and retry', cause: e },
            );
          }
          const d = this.transport.retryDelay(attempt);
          this.logger?.warn(
            `blob ${desc.digest.slice(0, 19)}: ${e instanceof Error ? e.message : String(e)}; retry ${attempt + 1}/${retries} in ${d} ms`,
          );
          await sleep(d);
        }
      }
    });
  }

  /** Downloads a blob to `destPath` (through a temp file), verifying size and digest. */
  async fetchBlob(repoRef: Reference, descriptor: Descriptor, destPath: string): Promise<void> {
    await this.retryPull(repoRef, descriptor, async (host) => {
      const tmp = `${destPath}.partial-${randomBytes(6).toString('hex')}`;
      try {
        const body = await this.blobStream(host, repoRef, descriptor);
        await pipeline(
          body,
          new VerifyStream(descriptor, `blob ${descriptor.digest} of ${repoRef.repository}`),
          // Large writes: fewer syscalls and thread-pool hops per downloaded MB.
          createWriteStream(tmp, { highWaterMark: 1 << 20 }),
        );
        await rename(tmp, destPath);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
    });
  }

  /** A blob as a stream, verified at the end (the stream errors with DIGEST_MISMATCH). */
  async openBlob(repoRef: Reference, descriptor: Descriptor): Promise<Readable> {
    const body = await this.withPullHosts(repoRef, (host) => this.blobStream(host, repoRef, descriptor));
    const verify = new VerifyStream(descriptor, `blob ${descriptor.digest} of ${repoRef.repository}`);
    body.on('error', (e) => verify.destroy(e));
    body.pipe(verify);
    return verify;
  }

  // ---------------------------------------------------------------- push

  private pushReq(ref: Reference, extra: Partial<ApiRequest> & { method: string }): ApiRequest {
    return {
      ref,
      host: this.pushHost(ref),
      mode: 'push',
      scopes: [repositoryScope(ref.repository, true)],
      retries: this.opts.pushRetry,
      ...extra,
    };
  }

  /** Size of a blob in the repository, or undefined when it is not there. */
  private async headBlob(ref: Reference, digest: string): Promise<number | undefined> {
    const req = this.pushReq(ref, { method: 'HEAD', path: `blobs/${digest}`, followRedirects: true });
    const res = await this.api(req);
    await drain(res);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await this.statusError(req, res, `HEAD blob ${digest}`);
    const len = Number(header(res, 'content-length'));
    return Number.isFinite(len) ? len : -1;
  }

  async blobExists(ref: Reference, digest: string): Promise<boolean> {
    return (await this.headBlob(ref, digest)) !== undefined;
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
    const res = await this.api(req);
    if (res.status === 201) {
      await drain(res);
      this.logger?.debug(`mounted ${digest.slice(0, 19)} from ${fromRepo} into ${ref.repository}`);
      return { mounted: true };
    }
    if (res.status === 202) {
      await drain(res);
      return { mounted: false, location: this.location(req, res) };
    }
    throw await this.statusError(req, res, `mount ${digest} from ${fromRepo}`);
  }

  private location(req: ApiRequest, res: HttpResponse): string {
    const loc = header(res, 'location');
    if (!loc) {
      throw new KilnError('registry', 'REGISTRY_ERROR', `${req.host} started an upload without a Location`, {
        hint: 'the registry does not follow the distribution spec for uploads',
      });
    }
    return new URL(loc, this.apiUrl(req)).toString();
  }

  private async startUpload(ref: Reference): Promise<string> {
    const req = this.pushReq(ref, {
      method: 'POST',
      path: 'blobs/uploads/',
      headers: { 'content-length': '0' },
    });
    const res = await this.api(req);
    if (res.status !== 202) throw await this.statusError(req, res, `start upload to ${ref.repository}`);
    await drain(res);
    return this.location(req, res);
  }

  private withDigest(location: string, digest: string): string {
    const u = new URL(location);
    u.searchParams.set('digest', digest);
    return u.toString();
  }

  /**
   * Pushes a blob unless the repository has it: mount when `mountFrom` names another repository of
   * the same registry, else a monolithic PUT (small blobs) or chunked PATCHes. Verified with HEAD;
   * failed attempts restart the upload from a fresh stream.
   */
  async pushBlob(
    ref: Reference,
    descriptor: Descriptor,
    open: BlobOpener,
    opts: { mountFrom?: string } = {},
  ): Promise<PushBlobResult> {
    const size = await this.headBlob(ref, descriptor.digest);
    if (size !== undefined) return 'exists';
    const retries = Math.max(0, this.opts.pushRetry);
    let mountTried = false;
    for (let attempt = 0; ; attempt++) {
      try {
        let location: string;
        if (opts.mountFrom && opts.mountFrom !== ref.repository && !mountTried) {
          mountTried = true;
          const m = await this.mountBlob(ref, descriptor.digest, opts.mountFrom);
          if (m.mounted) {
            await this.verifyPushed(ref, descriptor);
            return 'mounted';
          }
          location = m.location!;
        } else {
          location = await this.startUpload(ref);
        }
        if (descriptor.size <= this.monolithicMax)
          await this.uploadMonolithic(ref, descriptor, location, open);
        else await this.uploadChunked(ref, descriptor, location, open);
        await this.verifyPushed(ref, descriptor);
        return 'uploaded';
      } catch (e) {
        const again =
          isRetryableError(e) ||
          (e instanceof KilnError && ['BLOB_VERIFY_FAILED', 'UPLOAD_REJECTED'].includes(e.code));
        if (!again || attempt >= retries) {
          if (e instanceof KilnError) throw e;
          throw new KilnError(
            'registry',
            'BLOB_UPLOAD_FAILED',
            `uploading ${descriptor.digest} to ${ref.registry}/${ref.repository} failed: ${describeError(e)}`,
            { hint: 'check the network connection to the registry and retry', cause: e },
          );
        }
        const d = this.transport.retryDelay(attempt);
        this.logger?.warn(
          `upload of ${descriptor.digest.slice(0, 19)} failed (${e instanceof Error ? e.message : String(e)}); restarting in ${d} ms`,
        );
        await sleep(d);
      }
    }
  }

  private async verifyPushed(ref: Reference, desc: Descriptor): Promise<void> {
    const size = await this.headBlob(ref, desc.digest);
    if (size === undefined || (size >= 0 && size !== desc.size)) {
      throw new KilnError(
        'registry',
        'BLOB_VERIFY_FAILED',
        `${ref.registry}/${ref.repository} does not have ${desc.digest} (${desc.size} bytes) after the upload`,
        { hint: 'the registry lost or truncated the upload; retry the push' },
      );
    }
  }

  private async finishUpload(ref: Reference, desc: Descriptor, req: ApiRequest): Promise<void> {
    const res = await this.api(req);
    if (res.status === 201 || res.status === 204) {
      await drain(res);
      return;
    }
    const err = await this.statusError(req, res, `upload ${desc.digest} to ${ref.repository}`);
    // The registry saw different bytes, or forgot the session: start again.
    if (res.status === 400 || res.status === 404 || res.status === 416) {
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
    // Each PATCH streams its slice straight from the source: no chunk is ever assembled in memory.
    const it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    let leftover: Buffer | undefined;
    let ended = false;
    const slice = async function* (len: number): AsyncGenerator<Buffer> {
      let want = len;
      while (want > 0) {
        let b = leftover;
        leftover = undefined;
        if (!b) {
          const r = await it.next();
          if (r.done) {
            ended = true;
            return;
          }
          b = r.value;
        }
        if (b.length > want) {
          leftover = b.subarray(want);
          b = b.subarray(0, want);
        }
        want -= b.length;
        yield b;
      }
    };
    try {
      while (offset < desc.size && !ended) {
        const len = Math.min(this.chunkSize, desc.size - offset);
        const req = this.pushReq(ref, {
          method: 'PATCH',
          url: location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(len),
            'content-range': `${offset}-${offset + len - 1}`,
          },
          body: Readable.from(slice(len)),
          // A PATCH that failed half-way leaves the session in an unknown state: restart instead.
          retries: 0,
        });
        const res = await this.api(req);
        if (res.status !== 202) {
          const err = await this.statusError(req, res, `PATCH upload of ${desc.digest}`);
          if (res.status === 400 || res.status === 404 || res.status === 416) {
            throw new KilnError('registry', 'UPLOAD_REJECTED', err.message, { hint: err.hint, cause: err });
          }
          throw err;
        }
        await drain(res);
        location = this.location(req, res);
        offset += len;
      }
      if (!ended && (leftover !== undefined || !(await it.next()).done)) offset = desc.size + 1;
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

  /** PUTs a manifest under a tag or digest; returns the digest the registry reports. */
  async putManifest(ref: Reference, bytes: Buffer, mediaType: string): Promise<string> {
    const reference = ref.tag ?? ref.digest ?? 'latest';
    const req = this.pushReq(ref, {
      method: 'PUT',
      path: `manifests/${reference}`,
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    const res = await this.api(req);
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) {
      throw await this.statusError(req, res, `PUT manifest ${formatReference(ref)}`);
    }
    await drain(res);
    const digest = digestOf(bytes);
    const reported = header(res, 'docker-content-digest');
    if (reported && reported !== digest) {
      throw new KilnError(
        'registry',
        'DIGEST_MISMATCH',
        `${formatReference(ref)}: the registry stored the manifest as ${reported}, kiln computed ${digest}`,
        { hint: 'the registry rewrote the manifest; push with the other --format or use another registry' },
      );
    }
    return digest;
  }

  /**
   * Pushes an image: config and layers (3 at a time, mounting layers from other repositories of the
   * same registry), then HEAD-checks every blob, and only then writes the manifest for each reference.
   */
  async pushImage(
    image: BuiltImage,
    refs: Reference[],
    open: (layer: LayerBlob) => Readable | Promise<Readable>,
  ): Promise<string> {
    const mediaType = image.manifest.mediaType ?? MediaType.OciManifest;
    const groups = new Map<string, Reference[]>();
    for (const r of refs) {
      if (r.digest && r.digest !== image.digest) {
        throw new KilnError(
          'usage',
          'DIGEST_MISMATCH',
          `cannot push ${formatReference(r)}: the image digest is ${image.digest}`,
          { hint: 'push to a tag, or to the digest the image actually has' },
        );
      }
      const k = `${normalizeRegistry(r.registry)}/${r.repository}`;
      groups.set(k, [...(groups.get(k) ?? []), r]);
    }
    for (const group of groups.values()) {
      const target = group[0]!;
      const blobs: { desc: Descriptor; open: BlobOpener; mountFrom?: string }[] = [
        { desc: image.manifest.config, open: () => Readable.from([image.configBytes]) },
      ];
      const seen = new Set<string>([image.manifest.config.digest]);
      for (const layer of image.layers) {
        if (seen.has(layer.descriptor.digest)) continue;
        seen.add(layer.descriptor.digest);
        const src = layer.source;
        const mountFrom =
          src &&
          normalizeRegistry(src.registry) === normalizeRegistry(target.registry) &&
          src.repository !== target.repository
            ? src.repository
            : undefined;
        blobs.push({ desc: layer.descriptor, open: () => open(layer), ...(mountFrom ? { mountFrom } : {}) });
      }
      await runPool(blobs, PUSH_CONCURRENCY, async (b) => {
        const how = await this.pushBlob(
          target,
          b.desc,
          b.open,
          b.mountFrom ? { mountFrom: b.mountFrom } : {},
        );
        this.logger?.debug(
          `blob ${b.desc.digest.slice(0, 19)} ${how} in ${target.registry}/${target.repository}`,
        );
      });
      // Never write a manifest whose blobs are not all there.
      for (const b of blobs) await this.verifyPushed(target, b.desc);
      for (const r of group) {
        await this.putManifest(
          r.tag || r.digest ? r : { ...r, tag: 'latest' },
          image.manifestBytes,
          mediaType,
        );
        this.logger?.info(`pushed ${formatReference({ ...r, digest: undefined })}@${image.digest}`);
      }
    }
    return image.digest;
  }
}
