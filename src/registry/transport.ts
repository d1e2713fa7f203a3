/**
 * HTTP transport for registry traffic: one undici Agent per host and TLS setting (plain HTTP for
 * insecure registries, skip-verify, custom CA, client certificates), and retries with exponential
 * backoff plus jitter on 429, 5xx and connection errors, honouring Retry-After.
 */
import { Agent, ProxyAgent, request as undiciRequest } from 'undici';
import type { Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import type { RegistryOptions } from './options.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import { caList, envCas, hostDirsIn, proxyFor, shownProxy, tlsFromPath } from './network.ts';
import type { Env, TlsMaterial } from './network.ts';

export type Mode = 'pull' | 'push';

export type RequestBody = Buffer | string | Readable | undefined;

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Pull or push settings for the scheme and TLS choice; default pull. */
  mode?: Mode;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  url: string;
}

export interface TransportOptions {
  registry: RegistryOptions;
  logger?: Logger;
  /** First backoff delay; tests shorten it. Default 500 ms. */
  baseDelayMs?: number;
  /** Upper bound of one backoff delay (Retry-After is capped by it too). Default 30 s. */
  maxDelayMs?: number;
  /** How long to wait for response headers, and between body bytes, before the attempt fails. Default 120 s. */
  timeoutMs?: number;
  /** Where HTTP(S)_PROXY, NO_PROXY, SSL_CERT_FILE/DIR and NODE_EXTRA_CA_CERTS are read; default process.env. */
  env?: Env;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Retry-After in milliseconds: delta seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** Exponential backoff with full jitter on the upper half: base * 2^attempt * [0.5, 1). */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number): number {
  const exp = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt);
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 || (status >= 500 && status !== 501 && status !== 505);
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_ABORTED',
]);

/** True for network failures worth another attempt (resets, refused connections, timeouts, short bodies). */
export function isRetryableError(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; depth++) {
    if (cur instanceof KilnError) return cur.code === 'REGISTRY_UNAVAILABLE' || cur.code === 'NETWORK';
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true;
    const msg = (cur as { message?: unknown }).message;
    if (typeof msg === 'string' && /other side closed|premature close|socket hang up|terminated/i.test(msg)) {
      return true;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/** A short, secret-free description of a network error. */
export function describeError(e: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = e, depth = 0; cur && depth < 4; depth++) {
    const code = (cur as { code?: unknown }).code;
    const msg = (cur as { message?: unknown }).message;
    const s = [typeof code === 'string' ? code : '', typeof msg === 'string' ? msg : '']
      .filter(Boolean)
      .join(' ');
    if (s && !parts.includes(s)) parts.push(s);
    cur = (cur as { cause?: unknown }).cause;
  }
  return parts.join(': ') || String(e);
}

function hostMatches(list: string[], host: string): boolean {
  const h = host.toLowerCase();
  return list.some((x) => x.toLowerCase() === h || stripScheme(x).toLowerCase() === h);
}

export function stripScheme(s: string): string {
  return s.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
}

export class Transport {
  readonly registry: RegistryOptions;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly logger: Logger | undefined;
  private readonly env: Env;
  private readonly agents = new Map<string, Agent | ProxyAgent>();
  private readonly tls = new Map<string, { ca?: (string | Buffer)[]; cert?: Buffer; key?: Buffer }>();
  private envCaCache: Buffer[] | undefined;

  constructor(opts: TransportOptions) {
    this.registry = opts.registry;
    this.logger = opts.logger;
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.maxDelayMs = opts.maxDelayMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.env = opts.env ?? process.env;
  }

  /** `http` when the host is listed insecure or the insecure flag for the mode is set, else `https`. */
  scheme(host: string, mode: Mode = 'pull'): 'http' | 'https' {
    const r = this.registry;
    if (hostMatches(r.insecureRegistries, host)) return 'http';
    // Kaniko's split: --insecure is for pushes, --insecure-pull for pulls.
    if (mode === 'push' && r.insecure) return 'http';
    if (mode === 'pull' && r.insecurePull) return 'http';
    return 'https';
  }

  /** `scheme://host` for the registry API of `host`. */
  baseUrl(host: string, mode: Mode = 'pull'): string {
    return `${this.scheme(host, mode)}://${host}`;
  }

  private skipVerify(host: string, mode: Mode): boolean {
    const r = this.registry;
    return (
      (mode === 'push' && r.skipTlsVerify) ||
      (mode === 'pull' && r.skipTlsVerifyPull) ||
      hostMatches(r.skipTlsVerifyRegistries, host)
    );
  }

  /**
   * The CAs and client certificate for a host: Node's roots plus SSL_CERT_FILE/SSL_CERT_DIR, the
   * certificate paths for every registry (and their `<host>/` subdirectories), then the host's own
   * --registry-certificate and --registry-client-cert. No extra CA at all leaves Node's defaults.
   */
  private tlsFor(host: string): { ca?: (string | Buffer)[]; cert?: Buffer; key?: Buffer } {
    const cached = this.tls.get(host);
    if (cached) return cached;
    const r = this.registry;
    const why = 'the --registry-certificate / --registry-client-cert paths';
    const parts: TlsMaterial[] = [];
    for (const p of r.certificatePaths ?? []) {
      parts.push(tlsFromPath(p, why));
      const sub = hostDirsIn(p)[host];
      if (sub) parts.push(tlsFromPath(sub, why));
    }
    const own = r.certificates[host];
    if (own) parts.push(tlsFromPath(own, why));
    this.envCaCache ??= envCas(this.env);
    const out: { ca?: (string | Buffer)[]; cert?: Buffer; key?: Buffer } = {};
    const ca = caList([...this.envCaCache, ...parts.flatMap((t) => t.ca)]);
    if (ca) out.ca = ca;
    const client = r.clientCerts[host];
    const fromDir = parts.filter((t) => t.cert && t.key).at(-1);
    if (client) {
      out.cert = tlsFromPath(client.cert, why).ca[0];
      out.key = tlsFromPath(client.key, why).ca[0];
    } else if (fromDir) {
      out.cert = fromDir.cert;
      out.key = fromDir.key;
    }
    this.tls.set(host, out);
    return out;
  }

  /**
   * The undici dispatcher for a URL: an Agent with the host's TLS options, or a ProxyAgent (CONNECT
   * tunnel, the same TLS options towards the registry) when HTTP(S)_PROXY applies and NO_PROXY does not
   * exempt the host. One per host, TLS choice and proxy.
   */
  dispatcher(url: URL, mode: Mode = 'pull'): Dispatcher {
    const host = url.host;
    const skip = this.skipVerify(host, mode);
    const proxy = proxyFor(url, this.env);
    const key = `${url.protocol}//${host}|${skip ? 'skip' : 'verify'}|${proxy?.uri ?? ''}`;
    let agent = this.agents.get(key);
    if (agent) return agent;
    const connect: Record<string, unknown> = { ...this.tlsFor(host) };
    if (skip) connect.rejectUnauthorized = false;
    const pool = {
      connections: 16,
      keepAliveTimeout: 10_000,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    };
    if (proxy) {
      this.logger?.debug(`${url.protocol}//${host} through proxy ${shownProxy(proxy.uri)} (${proxy.from})`);
      agent = new ProxyAgent({ uri: proxy.uri, requestTls: connect, ...pool });
    } else {
      agent = new Agent({ connect, ...pool });
    }
    this.agents.set(key, agent);
    return agent;
  }

  /** One HTTP exchange, no retry. Network errors are wrapped in KilnError('registry','NETWORK'). */
  async once(req: HttpRequest): Promise<HttpResponse> {
    const u = new URL(req.url);
    const mode = req.mode ?? 'pull';
    try {
      const res = await undiciRequest(u, {
        method: req.method as Dispatcher.HttpMethod,
        headers: req.headers ?? {},
        body: req.body ?? null,
        dispatcher: this.dispatcher(u, mode),
      });
      return { status: res.statusCode, headers: res.headers, body: res.body, url: req.url };
    } catch (e) {
      if (e instanceof KilnError) throw e;
      const proxy = proxyFor(u, this.env);
      const via = proxy
        ? ` through the proxy ${shownProxy(proxy.uri)} (${proxy.from}; list the host in NO_PROXY to bypass it)`
        : '';
      throw new KilnError(
        'registry',
        'NETWORK',
        `${req.method} ${u.origin}${u.pathname} failed${proxy ? ` via ${shownProxy(proxy.uri)}` : ''}: ${describeError(e)}`,
        {
          hint: `check that ${u.host} is reachable${via}${u.protocol === 'https:' ? ' and serves HTTPS with a certificate kiln trusts (--registry-certificate, SSL_CERT_FILE; --insecure-registry for plain HTTP)' : ''}`,
          cause: e,
        },
      );
    }
  }

  /**
   * Sends with retries on 429/5xx and network errors when the body can be replayed (none, Buffer,
   * string). Streamed bodies get one attempt: the caller restarts the whole operation instead.
   */
  async send(req: HttpRequest, retries: number): Promise<HttpResponse> {
    const replayable = req.body === undefined || typeof req.body === 'string' || Buffer.isBuffer(req.body);
    const max = replayable ? Math.max(0, retries) : 0;
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.once(req);
      } catch (e) {
        if (attempt >= max || !isRetryableError(e)) throw e;
        const d = backoffDelay(attempt, this.baseDelayMs, this.maxDelayMs);
        this.logger?.debug(`${req.method} ${safeUrl(req.url)}: ${describeError(e)}; retrying in ${d} ms`);
        await sleep(d);
        continue;
      }
      if (!isRetryableStatus(res.status) || attempt >= max) return res;
      await drain(res);
      const d = this.retryDelay(attempt, res);
      this.logger?.debug(`${req.method} ${safeUrl(req.url)}: HTTP ${res.status}; retrying in ${d} ms`);
      await sleep(d);
    }
  }

  /** Backoff for the given attempt, or the server's Retry-After when it asks for longer (capped). */
  retryDelay(attempt: number, res?: HttpResponse): number {
    const backoff = backoffDelay(attempt, this.baseDelayMs, this.maxDelayMs);
    const ra = res ? parseRetryAfter(header(res, 'retry-after')) : undefined;
    if (ra === undefined) return backoff;
    return Math.min(this.maxDelayMs, Math.max(backoff, ra));
  }

  async close(): Promise<void> {
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => a.destroy())));
  }
}

/** First value of a response header. */
export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads and discards a body so the connection can be reused. */
export async function drain(res: HttpResponse): Promise<void> {
  try {
    await res.body.dump({ limit: 1 << 20 });
  } catch {
    /* the connection is closed instead */
  }
}

/** Reads a body into memory up to `limit` bytes. */
export async function readBody(res: HttpResponse, limit = 64 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      res.body.destroy();
      throw new KilnError(
        'registry',
        'RESPONSE_TOO_LARGE',
        `response from ${safeUrl(res.url)} exceeds ${limit} bytes`,
        {
          hint: 'the registry sent more data than a manifest or error can hold',
        },
      );
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** URL without query string (upload locations carry state tokens, redirects carry signatures). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url.split('?')[0] ?? url;
  }
}
