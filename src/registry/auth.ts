/**
 * Registry authentication: parses WWW-Authenticate challenges, answers Basic ones from the
 * credential store, and gets Bearer tokens from the token service (GET with Basic credentials or
 * anonymously, or an OAuth2 refresh-token POST when an identity token is configured). Tokens are
 * cached per host and scope set until they expire.
 */
import type { RegistryCredential } from './options.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import type { Credential, CredentialStore } from './credentials.ts';
import { normalizeRegistryKey } from './credentials.ts';
import { header, readBody, safeUrl } from './transport.ts';
import type { Transport } from './transport.ts';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate value into challenges, e.g.
 * `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`.
 */
export function parseWwwAuthenticate(value: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = value;
  const skipWs = (): void => {
    while (i < s.length && /[\s,]/.test(s[i]!)) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && /[!#$%&'*+.^_`|~0-9A-Za-z/-]/.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < s.length) {
    skipWs();
    if (i >= s.length) break;
    const start = i;
    const name = token();
    if (name === '') {
      i++;
      continue;
    }
    let j = i;
    while (j < s.length && s[j] === ' ') j++;
    if (s[j] === '=' && current) {
      // auth-param
      i = j + 1;
      while (i < s.length && s[i] === ' ') i++;
      let v = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          v += s[i];
          i++;
        }
        i++; // closing quote
      } else {
        const vs = i;
        while (i < s.length && s[i] !== ',') i++;
        v = s.slice(vs, i).trim();
      }
      current.params[name.toLowerCase()] = v;
    } else if (s[j] === '=' && !current) {
      i = start + name.length + 1; // stray param without scheme: ignore
    } else {
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/** `repository:<name>:pull` or `repository:<name>:pull,push`. */
export function repositoryScope(repository: string, push: boolean): string {
  return `repository:${repository}:${push ? 'pull,push' : 'pull'}`;
}

interface CachedToken {
  header: string;
  expires: number;
}

export interface AuthenticatorOptions {
  transport: Transport;
  credentials: CredentialStore;
  /** Credentials from the build options, tried before the store. */
  explicit?: RegistryCredential[];
  logger?: Logger;
  /** Retries for token requests. */
  retries?: number;
}

const DEFAULT_EXPIRES_S = 60;

export class Authenticator {
  private readonly transport: Transport;
  private readonly store: CredentialStore;
  private readonly explicit: RegistryCredential[];
  private readonly logger: Logger | undefined;
  private readonly retries: number;
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly creds = new Map<string, Promise<Credential | null>>();
  private readonly pending = new Map<string, Promise<string | undefined>>();

  constructor(opts: AuthenticatorOptions) {
    this.transport = opts.transport;
    this.store = opts.credentials;
    this.explicit = opts.explicit ?? [];
    this.logger = opts.logger;
    this.retries = opts.retries ?? 3;
  }

  /** The credential for a host (explicit options first, then the store), looked up once. */
  credential(host: string): Promise<Credential | null> {
    const key = normalizeRegistryKey(host);
    let p = this.creds.get(key);
    if (!p) {
      p = (async () => {
        const ex = this.explicit.find((c) => normalizeRegistryKey(c.registry) === key);
        const cred: Credential | null = ex
          ? { username: ex.username, password: ex.password }
          : await this.store.get(host);
        if (cred) {
          this.logger?.addSecret(cred.password);
          this.logger?.addSecret(cred.identityToken);
          this.logger?.addSecret(cred.registryToken);
          if (cred.username && cred.password) {
            this.logger?.addSecret(Buffer.from(`${cred.username}:${cred.password}`).toString('base64'));
          }
        }
        return cred;
      })();
      this.creds.set(key, p);
      p.catch(() => this.creds.delete(key));
    }
    return p;
  }

  private key(host: string, scopes: string[]): string {
    return `${host}|${[...new Set(scopes)].sort().join(' ')}`;
  }

  /**
   * The Authorization header to send up front: a cached token, or a new one when the host is known
   * to challenge. Undefined when the host has not challenged yet (the first request goes anonymous).
   */
  async header(host: string, scopes: string[]): Promise<string | undefined> {
    const challenge = this.challenges.get(host);
    if (!challenge) return undefined;
    const k = this.key(host, scopes);
    const cached = this.tokens.get(k);
    if (cached && cached.expires > Date.now()) return cached.header;
    return this.obtain(host, scopes, challenge);
  }

  /** Whether a header for these scopes came from the cache (so a 401 may just mean it expired). */
  hasCached(host: string, scopes: string[]): boolean {
    return this.tokens.has(this.key(host, scopes));
  }

  /** Drops the cached token for these scopes. */
  invalidate(host: string, scopes: string[]): void {
    this.tokens.delete(this.key(host, scopes));
  }

  /**
   * Handles a 401: remembers the host's challenge, drops any cached token and gets a new header.
   * Undefined when there is nothing better to send (no credentials for a Basic challenge).
   */
  async onUnauthorized(
    host: string,
    scopes: string[],
    wwwAuthenticate: string | undefined,
  ): Promise<string | undefined> {
    const challenges = parseWwwAuthenticate(wwwAuthenticate ?? '');
    const challenge =
      challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!challenge) return undefined;
    this.challenges.set(host, challenge);
    this.invalidate(host, scopes);
    return this.obtain(host, scopes, challenge);
  }

  private obtain(host: string, scopes: string[], challenge: Challenge): Promise<string | undefined> {
    const k = this.key(host, scopes);
    let p = this.pending.get(k);
    if (!p) {
      p = this.fetchHeader(host, scopes, challenge).finally(() => this.pending.delete(k));
      this.pending.set(k, p);
    }
    return p;
  }

  private async fetchHeader(
    host: string,
    scopes: string[],
    challenge: Challenge,
  ): Promise<string | undefined> {
    const cred = await this.credential(host);
    if (challenge.scheme === 'basic') {
      if (!cred?.username || cred.password === undefined) return undefined;
      const h = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      this.tokens.set(this.key(host, scopes), { header: h, expires: Number.POSITIVE_INFINITY });
      return h;
    }
    if (challenge.scheme !== 'bearer') return undefined;
    if (cred?.registryToken) {
      const h = `Bearer ${cred.registryToken}`;
      this.tokens.set(this.key(host, scopes), { header: h, expires: Number.POSITIVE_INFINITY });
      return h;
    }
    const realm = challenge.params.realm;
    if (!realm) {
      throw new KilnError(
        'registry',
        'BAD_CHALLENGE',
        `registry ${host} sent a Bearer challenge without a realm`,
        {
          hint: 'the registry is misconfigured: its token auth needs a realm URL',
        },
      );
    }
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new KilnError(
        'registry',
        'BAD_CHALLENGE',
        `registry ${host} sent a token realm that is not a URL`,
        {
          hint: 'the registry is misconfigured: its token realm must be an absolute URL',
        },
      );
    }
    const allScopes = [
      ...new Set([...scopes, ...(challenge.params.scope ? challenge.params.scope.split(' ') : [])]),
    ];
    const service = challenge.params.service;
    const { token, expiresIn } = cred?.identityToken
      ? await this.refreshTokenGrant(host, realmUrl, service, allScopes, cred.identityToken)
      : await this.getToken(host, realmUrl, service, allScopes, cred);
    this.logger?.addSecret(token);
    const h = `Bearer ${token}`;
    const ttl = (expiresIn > 0 ? expiresIn : DEFAULT_EXPIRES_S) * 1000;
    // Renew a little early so a token does not expire between the check and the request.
    this.tokens.set(this.key(host, scopes), {
      header: h,
      expires: Date.now() + ttl - Math.min(10_000, ttl / 10),
    });
    return h;
  }

  private async getToken(
    host: string,
    realm: URL,
    service: string | undefined,
    scopes: string[],
    cred: Credential | null,
  ): Promise<{ token: string; expiresIn: number }> {
    const u = new URL(realm);
    if (service !== undefined) u.searchParams.set('service', service);
    for (const s of scopes) u.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (cred?.username && cred.password !== undefined) {
      u.searchParams.set('account', cred.username);
      headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
    }
    const res = await this.transport.send({ method: 'GET', url: u.toString(), headers }, this.retries);
    return this.tokenResponse(host, res, cred);
  }

  private async refreshTokenGrant(
    host: string,
    realm: URL,
    service: string | undefined,
    scopes: string[],
    refreshToken: string,
  ): Promise<{ token: string; expiresIn: number }> {
    const form = new URLSearchParams({ grant_type: 'refresh_token' });
    if (service !== undefined) form.set('service', service);
    form.set('scope', scopes.join(' '));
    form.set('client_id', 'kiln');
    form.set('refresh_token', refreshToken);
    const res = await this.transport.send(
      {
        method: 'POST',
        url: realm.toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      },
      this.retries,
    );
    return this.tokenResponse(host, res, { identityToken: refreshToken });
  }

  private async tokenResponse(
    host: string,
    res: Awaited<ReturnType<Transport['send']>>,
    cred: Credential | null,
  ): Promise<{ token: string; expiresIn: number }> {
    const body = await readBody(res, 1 << 20);
    if (res.status !== 200) {
      const msg = this.redact(registryMessage(body), cred);
      const who = cred?.username
        ? ` for user ${cred.username}`
        : cred?.identityToken
          ? ' for the identity token'
          : '';
      const denied = res.status === 401 || res.status === 403;
      throw new KilnError(
        'registry',
        denied ? 'UNAUTHORIZED' : 'TOKEN_FAILED',
        `token service ${safeUrl(res.url)} for ${host} answered HTTP ${res.status}${who}${msg ? `: ${msg}` : ''}`,
        {
          hint: denied
            ? `check the credentials for ${host} (docker login ${host}, or the Docker config / explicit credentials)`
            : `the token service failed; retry later or check ${header(res, 'www-authenticate') ? 'its auth setup' : 'its logs'}`,
        },
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const o = (parsed && typeof parsed === 'object' ? parsed : {}) as Record<string, unknown>;
    const token = typeof o.token === 'string' && o.token ? o.token : o.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new KilnError(
        'registry',
        'TOKEN_FAILED',
        `token service ${safeUrl(res.url)} for ${host} returned no token`,
        {
          hint: 'the token service must answer {"token": "..."} or {"access_token": "..."}',
        },
      );
    }
    const expiresIn = typeof o.expires_in === 'number' ? o.expires_in : DEFAULT_EXPIRES_S;
    return { token, expiresIn };
  }

  /** Removes secrets of `cred` (and any the logger knows) from text taken from a server. */
  redact(text: string, cred?: Credential | null): string {
    let out = text;
    for (const s of [cred?.password, cred?.identityToken, cred?.registryToken]) {
      if (s && s.length >= 1) out = out.split(s).join('***');
    }
    return this.logger ? this.logger.redact(out) : out;
  }
}

/** The first `errors[].message` (with its code) of a registry error body, or a short text body. */
export function registryMessage(body: Buffer): string {
  const text = body.toString('utf8').trim();
  if (text === '') return '';
  try {
    const o = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown; detail?: unknown }[] };
    if (Array.isArray(o.errors) && o.errors.length > 0) {
      return o.errors
        .map((e) => {
          const code = typeof e.code === 'string' ? e.code : '';
          const msg = typeof e.message === 'string' ? e.message : '';
          return code && msg ? `${code}: ${msg}` : code || msg;
        })
        .filter(Boolean)
        .join('; ')
        .slice(0, 300);
    }
    const d = (o as { details?: unknown; message?: unknown }).message;
    if (typeof d === 'string') return d.slice(0, 300);
  } catch {
    /* not JSON */
  }
  return text.startsWith('<') ? '' : (text.split('\n')[0] ?? '').slice(0, 200);
}
