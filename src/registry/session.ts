/**
 * What pull and push share: the transport, the authenticator and one registry API call with auth,
 * status retries and redirects, plus the errors made from a registry's answers. Like
 * go-containerregistry's `remote` transport layer, it knows nothing of manifests or uploads.
 */
import type { RegistryOptions } from './options.ts';
import type { Logger } from '../log/logger.ts';
import type { TransferProgress } from '../log/transfer.ts';
import { KilnError } from '../util/errors.ts';
import { Authenticator, registryMessage } from './auth.ts';
import type { CredentialStore } from './credentials.ts';
import { formatReference, normalizeRegistry, registryApiHost } from './reference.ts';
import type { Reference } from './reference.ts';
import { drain, header, parseRetryAfter, readBody, safeUrl, stripScheme, Transport } from './transport.ts';
import type { HttpResponse, Mode, RequestBody } from './transport.ts';
import type { Env } from './network.ts';

const MAX_REDIRECTS = 10;

export interface SessionOptions {
  registry: RegistryOptions;
  credentials: CredentialStore;
  logger?: Logger;
  /** Told of the bytes of each blob pulled or pushed (the CLI's bars and progress lines). */
  progress?: TransferProgress;
  /** First retry delay (default 500 ms); tests shorten it. */
  baseDelayMs?: number;
  /** Headers and body-idle timeout of one request (default 120 s); tests shorten it. */
  timeoutMs?: number;
  /** Proxy and CA variables (HTTP(S)_PROXY, NO_PROXY, SSL_CERT_FILE/DIR); default process.env. */
  env?: Env;
}

export interface ApiRequest {
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

/** A retryable registry answer (429, 5xx) that carries the wait the registry asked for. */
/** One place to pull a reference from: a mirror (with its path prefix applied) or the registry. */
export interface PullEndpoint {
  host: string;
  /** The reference as that host names it (a mirror's repository carries its prefix). */
  ref: Reference;
}

export class RegistryBusyError extends KilnError {
  constructor(
    message: string,
    hint: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super('registry', 'REGISTRY_UNAVAILABLE', message, { hint });
  }
}

export class RegistrySession {
  readonly transport: Transport;
  readonly opts: RegistryOptions;
  readonly logger: Logger | undefined;
  readonly progress: TransferProgress | undefined;
  private readonly auth: Authenticator;

  constructor(opts: SessionOptions) {
    this.opts = opts.registry;
    this.logger = opts.logger;
    this.progress = opts.progress;
    this.transport = new Transport({
      registry: opts.registry,
      logger: opts.logger,
      baseDelayMs: opts.baseDelayMs,
      timeoutMs: opts.timeoutMs,
      ...(opts.env ? { env: opts.env } : {}),
    });
    this.auth = new Authenticator({
      transport: this.transport,
      credentials: opts.credentials,
      explicit: opts.registry.credentials,
      logger: opts.logger,
      retries: opts.registry.pullRetry,
    });
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /**
   * Where to pull a reference from, in order: docker.io mirrors, then --registry-map mirrors of its
   * registry, then the registry itself. A mirror `host/prefix` serves the repository under the
   * prefix (`prefix/library/alpine` for docker.io's `alpine`), as Kaniko's remapRepository does.
   */
  pullEndpoints(ref: Reference): PullEndpoint[] {
    const out: PullEndpoint[] = [];
    const reg = normalizeRegistry(ref.registry);
    const mirrors: string[] = [];
    if (reg === 'docker.io') mirrors.push(...this.opts.mirrors);
    for (const [from, to] of Object.entries(this.opts.registryMap)) {
      if (normalizeRegistry(stripScheme(from)) === reg) mirrors.push(...to);
    }
    for (const m of mirrors) {
      const [host = '', ...rest] = stripScheme(m).split('/');
      const prefix = rest.filter(Boolean).join('/');
      if (host === '') continue;
      const repository = prefix ? `${prefix}/${ref.repository}` : ref.repository;
      out.push({ host, ref: { ...ref, registry: host, repository } });
    }
    if (!this.opts.skipDefaultRegistryFallback || out.length === 0)
      out.push({ host: registryApiHost(ref.registry), ref });
    const seen = new Set<string>();
    return out.filter((e) => {
      const k = `${e.host}/${e.ref.repository}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  /** The hosts of pullEndpoints, in order. */
  pullHosts(ref: Reference): string[] {
    return [...new Set(this.pullEndpoints(ref).map((e) => e.host))];
  }

  /** Runs `fn` against each pull endpoint in turn (the host and the reference there) until one succeeds. */
  async withPullHosts<T>(ref: Reference, fn: (host: string, at: Reference) => Promise<T>): Promise<T> {
    const eps = this.pullEndpoints(ref);
    let last: unknown;
    for (let i = 0; i < eps.length; i++) {
      const ep = eps[i]!;
      try {
        return await fn(ep.host, ep.ref);
      } catch (e) {
        last = e;
        const next = eps[i + 1];
        if (next) {
          this.logger?.warn(
            `mirror ${ep.host}/${ep.ref.repository} failed for ${formatReference(ref)}: ${e instanceof Error ? e.message : String(e)}; trying ${next.host}/${next.ref.repository}`,
          );
        }
      }
    }
    throw last;
  }

  apiUrl(req: ApiRequest): string {
    return (
      req.url ?? `${this.transport.baseUrl(req.host, req.mode)}/v2/${req.ref.repository}/${req.path ?? ''}`
    );
  }

  /**
   * One registry API call with auth (challenge, token, one re-authentication after a 401), status
   * retries for replayable bodies, and manual redirects that never carry Authorization to another
   * origin. A final 401/403 becomes UNAUTHORIZED/DENIED.
   */
  async api(req: ApiRequest): Promise<HttpResponse> {
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
  async statusError(req: ApiRequest, res: HttpResponse, what: string): Promise<KilnError> {
    const body =
      req.method === 'HEAD' ? Buffer.alloc(0) : await readBody(res, 1 << 20).catch(() => Buffer.alloc(0));
    const msg = this.auth.redact(registryMessage(body));
    const retryable = res.status === 429 || res.status >= 500;
    const message = `${what}: ${req.host} answered HTTP ${res.status}${msg ? `: ${msg}` : ''}`;
    if (retryable) {
      return new RegistryBusyError(
        message,
        `the registry is overloaded or failing; retry later (retries: ${req.retries})`,
        parseRetryAfter(header(res, 'retry-after')),
      );
    }
    return new KilnError('registry', 'REGISTRY_ERROR', message, {
      hint: 'the registry rejected the request; check the reference and the registry logs',
    });
  }

  /**
   * The wait before attempt `attempt + 1` of a whole operation (an upload restarted, a download
   * fetched again): the backoff, or longer when the failure `e` carried a Retry-After (capped).
   */
  retryDelay(attempt: number, e?: unknown): number {
    const backoff = this.transport.retryDelay(attempt);
    for (let cur: unknown = e, depth = 0; cur && depth < 5; depth++) {
      if (cur instanceof RegistryBusyError && cur.retryAfterMs !== undefined) {
        return Math.min(this.transport.maxDelayMs, Math.max(backoff, cur.retryAfterMs));
      }
      cur = (cur as { cause?: unknown }).cause;
    }
    return backoff;
  }
}
