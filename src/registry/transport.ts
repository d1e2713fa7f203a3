/**
 * HTTP transport for registry traffic: one undici Agent per host and TLS setting (plain HTTP for
 * insecure registries, skip-verify, custom CA, client certificates), and retries with exponential
 * backoff plus jitter on 429, 5xx and connection errors, honouring Retry-After.
 */
import { readFileSync } from 'node:fs';
import { Agent, request as undiciRequest } from 'undici';
import type { Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import type { RegistryOptions } from './options.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';

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
  private readonly agents = new Map<string, Agent>();

  constructor(opts: TransportOptions) {
    this.registry = opts.registry;
    this.logger = opts.logger;
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.maxDelayMs = opts.maxDelayMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
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

  /** The undici Agent for a host with its TLS options (one per host and mode). */
  dispatcher(host: string, mode: Mode = 'pull'): Dispatcher {
    const skip = this.skipVerify(host, mode);
    const key = `${host}|${skip ? 'skip' : 'verify'}`;
    let agent = this.agents.get(key);
    if (agent) return agent;
    const connect: Record<string, unknown> = {};
    if (skip) connect.rejectUnauthorized = false;
    const caPath = this.registry.certificates[host];
    if (caPath) connect.ca = readTlsFile(caPath, host, 'CA bundle');
    const client = this.registry.clientCerts[host];
    if (client) {
      connect.cert = readTlsFile(client.cert, host, 'client certificate');
      connect.key = readTlsFile(client.key, host, 'client key');
    }
    agent = new Agent({
      connect,
      connections: 16,
      keepAliveTimeout: 10_000,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
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
        dispatcher: this.dispatcher(u.host, mode),
      });
      return { status: res.statusCode, headers: res.headers, body: res.body, url: req.url };
    } catch (e) {
      throw new KilnError(
        'registry',
        'NETWORK',
        `${req.method} ${u.origin}${u.pathname} failed: ${describeError(e)}`,
        {
          hint: `check that ${u.host} is reachable${u.protocol === 'https:' ? ' and serves HTTPS (use --insecure-registry for plain HTTP)' : ''}`,
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

function readTlsFile(path: string, host: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new KilnError('usage', 'BAD_CERTIFICATE', `cannot read ${what} ${path} for ${host}`, {
      hint: 'check the --registry-certificate / --registry-client-cert paths',
      cause: e,
    });
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
