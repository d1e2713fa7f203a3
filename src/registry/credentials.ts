/**
 * Registry credential lookup in Docker's order: explicit credentials, then each Docker config
 * (DOCKER_AUTH_CONFIG content first, then $DOCKER_CONFIG/config.json): `credHelpers[host]`, `auths`
 * entries, then the `credsStore` helper. Secrets never appear in error messages.
 */
import { firstLine, runCommand } from '../util/command.ts';
import { accessSync, existsSync, constants as fsConstants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { KilnError } from '../util/errors.ts';

export interface Credential {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token endpoint. */
  identityToken?: string;
  /** Bearer token sent to the registry as is. */
  registryToken?: string;
}

export interface CredentialStoreOptions {
  /** Credentials keyed by registry host (or any Docker config key form). Checked first. */
  explicit?: Record<string, Credential>;
  /** Directory holding config.json; default $DOCKER_CONFIG, else Kaniko's /kaniko/.docker when its config.json exists, else ~/.docker. */
  dockerConfigDir?: string;
  /** Kaniko's config directory, tried when DOCKER_CONFIG is unset (tests point it elsewhere). */
  kanikoConfigDir?: string;
  /** Environment for DOCKER_CONFIG, DOCKER_AUTH_CONFIG, HOME and the PATH used to find helpers. */
  env?: NodeJS.ProcessEnv;
  /** Credential helper timeout in milliseconds (default 30 s). */
  helperTimeoutMs?: number;
}

const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
/** The server address Docker uses for Hub in config keys and helper requests. */
const DOCKER_HUB_SERVER = 'https://index.docker.io/v1/';
const HELPER_TIMEOUT_MS = 30_000;
const KANIKO_CONFIG_DIR = '/kaniko/.docker';
const TOKEN_USERNAME = '<token>';

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
  registrytoken?: unknown;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

interface ConfigSource {
  /** Where it came from, for messages: a file path or 'DOCKER_AUTH_CONFIG'. */
  origin: string;
  config: DockerConfig;
}

/**
 * Docker's ConvertToHostname plus Hub aliasing: `https://host/v1/` -> `host`,
 * `https://index.docker.io/v1/` -> `docker.io`.
 */
export function normalizeRegistryKey(key: string): string {
  let h = key.trim();
  if (h.startsWith('http://')) h = h.slice('http://'.length);
  else if (h.startsWith('https://')) h = h.slice('https://'.length);
  const slash = h.indexOf('/');
  if (slash !== -1) h = h.slice(0, slash);
  return DOCKER_HUB_ALIASES.has(h.toLowerCase()) ? DOCKER_HUB : h;
}

/** Looks a host up in a config map whose keys may be in any of Docker's forms; an exact key wins. */
function lookup<T>(map: Record<string, T> | undefined, host: string): [key: string, value: T] | undefined {
  if (!map || typeof map !== 'object') return undefined;
  if (Object.prototype.hasOwnProperty.call(map, host)) return [host, map[host]!];
  for (const [k, v] of Object.entries(map)) {
    if (normalizeRegistryKey(k) === host) return [k, v];
  }
  return undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function isEmpty(c: Credential): boolean {
  return !c.username && !c.password && !c.identityToken && !c.registryToken;
}

export class CredentialStore {
  private readonly explicit: Record<string, Credential>;
  private readonly env: NodeJS.ProcessEnv;
  private readonly configDir: string;
  private readonly timeoutMs: number;

  constructor(opts: CredentialStoreOptions = {}) {
    this.explicit = opts.explicit ?? {};
    this.env = opts.env ?? process.env;
    // Kaniko's image sets DOCKER_CONFIG=/kaniko/.docker; jobs written for it put config.json there.
    const kaniko = opts.kanikoConfigDir ?? KANIKO_CONFIG_DIR;
    this.configDir =
      opts.dockerConfigDir ??
      str(this.env.DOCKER_CONFIG) ??
      (existsSync(join(kaniko, 'config.json')) ? kaniko : join(str(this.env.HOME) ?? homedir(), '.docker'));
    this.timeoutMs = opts.helperTimeoutMs ?? HELPER_TIMEOUT_MS;
  }

  /** Path of the config.json this store reads. */
  get configPath(): string {
    return join(this.configDir, 'config.json');
  }

  /** Credentials for a registry host (`docker.io`, `ghcr.io`, `localhost:5000`), or null for anonymous. */
  async get(registry: string): Promise<Credential | null> {
    const host = normalizeRegistryKey(registry);

    const ex = lookup(this.explicit, host);
    if (ex && !isEmpty(ex[1])) return { ...ex[1] };

    for (const source of this.sources()) {
      const found = await this.fromConfig(source, host);
      if (found) return found;
    }
    return null;
  }

  private sources(): ConfigSource[] {
    const out: ConfigSource[] = [];
    const envConfig = this.env.DOCKER_AUTH_CONFIG;
    if (envConfig !== undefined && envConfig.trim() !== '') {
      out.push({ origin: 'DOCKER_AUTH_CONFIG', config: parseConfig(envConfig, 'DOCKER_AUTH_CONFIG') });
    }
    const file = this.configPath;
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        throw new KilnError('registry', 'BAD_DOCKER_CONFIG', `cannot read Docker config ${file}: ${code}`, {
          hint: 'make the file readable or point DOCKER_CONFIG at another directory',
          cause: e,
        });
      }
    }
    if (text !== undefined && text.trim() !== '') out.push({ origin: file, config: parseConfig(text, file) });
    return out;
  }

  private async fromConfig(source: ConfigSource, host: string): Promise<Credential | null> {
    const { config } = source;
    const helper = lookup(config.credHelpers, host);
    if (helper && str(helper[1])) {
      return this.runHelper(helper[1], host);
    }
    const entry = lookup(config.auths, host);
    if (entry && entry[1] && typeof entry[1] === 'object') {
      const cred = decodeEntry(entry[1], source.origin, host);
      if (!isEmpty(cred)) return cred;
    }
    const store = str(config.credsStore);
    if (store) return this.runHelper(store, host);
    return null;
  }

  /** Runs `docker-credential-<name> get`; null when the helper has no credentials for the host. */
  private async runHelper(name: string, host: string): Promise<Credential | null> {
    const program = `docker-credential-${name}`;
    const resolved = findOnPath(program, this.env.PATH);
    if (!resolved) {
      throw new KilnError(
        'registry',
        'CREDENTIAL_HELPER_MISSING',
        `credential helper ${program} for ${host} is not on PATH`,
        {
          hint: `install ${program} or remove "${name}" from credHelpers/credsStore in the Docker config`,
        },
      );
    }
    const serverUrl = host === DOCKER_HUB ? DOCKER_HUB_SERVER : host;
    const { code, stdout, stderr, missing, timedOut } = await runCommand(resolved, ['get'], {
      input: serverUrl,
      env: this.env,
      timeoutMs: this.timeoutMs,
      ownProcessGroup: true,
    });
    if (timedOut) {
      throw new KilnError(
        'registry',
        'CREDENTIAL_HELPER_FAILED',
        `credential helper ${program} did not answer for ${host} within ${Math.round(this.timeoutMs / 1000)}s`,
        { hint: `check that ${program} works: echo ${serverUrl} | ${program} get` },
      );
    }
    if (missing) {
      throw new KilnError(
        'registry',
        'CREDENTIAL_HELPER_FAILED',
        `cannot run credential helper ${program}: ${firstLine(stderr)}`,
        { hint: `check that ${resolved} is executable` },
      );
    }
    if (code !== 0) {
      const out = `${stdout}\n${stderr}`;
      if (/credentials not found/i.test(out)) return null;
      const first = (stderr.trim() || stdout.trim()).split('\n')[0]?.slice(0, 200) ?? '';
      throw new KilnError(
        'registry',
        'CREDENTIAL_HELPER_FAILED',
        `credential helper ${program} failed for ${host} (exit ${code})${first ? `: ${first}` : ''}`,
        { hint: `check that ${program} works: echo ${serverUrl} | ${program} get` },
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch {
      parsed = undefined;
    }
    if (!parsed || typeof parsed !== 'object') {
      throw new KilnError(
        'registry',
        'CREDENTIAL_HELPER_FAILED',
        `credential helper ${program} returned output for ${host} that is not a JSON object`,
        { hint: `the helper must print {"ServerURL","Username","Secret"}; check ${program} get by hand` },
      );
    }
    const o = parsed as Record<string, unknown>;
    const username = str(o.Username);
    const secret = str(o.Secret);
    if (!secret && !username) return null;
    if (username === TOKEN_USERNAME) return secret ? { identityToken: secret } : null;
    const cred: Credential = {};
    if (username) cred.username = username;
    if (secret) cred.password = secret;
    return cred;
  }
}

function parseConfig(text: string, origin: string): DockerConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    // The parser's message can quote the content, which may hold secrets: leave it out.
    throw new KilnError('registry', 'BAD_DOCKER_CONFIG', `Docker config ${origin} is not valid JSON`, {
      hint: 'fix the JSON (e.g. with `jq . config.json`) or remove the file',
      cause: e instanceof Error ? new Error(e.name) : undefined,
    });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new KilnError('registry', 'BAD_DOCKER_CONFIG', `Docker config ${origin} is not a JSON object`, {
      hint: 'the config must look like {"auths": {"registry.example.com": {"auth": "<base64 user:pass>"}}}',
    });
  }
  return parsed as DockerConfig;
}

function decodeEntry(entry: AuthEntry, origin: string, host: string): Credential {
  const cred: Credential = {};
  const auth = str(entry.auth);
  if (auth) {
    const compact = auth.replace(/\s+/g, '');
    const decoded =
      /^[A-Za-z0-9+/]*={0,2}$/.test(compact) && compact.length % 4 !== 1
        ? Buffer.from(compact, 'base64').toString('utf8')
        : undefined;
    const colon = decoded === undefined ? -1 : decoded.indexOf(':');
    if (decoded === undefined || colon <= 0) {
      throw new KilnError(
        'registry',
        'BAD_DOCKER_CONFIG',
        `Docker config ${origin}: the "auth" value for ${host} is not base64 of "username:password"`,
        {
          hint: `regenerate it with: printf '%s' 'user:password' | base64 -w0 (or run docker login ${host})`,
        },
      );
    }
    cred.username = decoded!.slice(0, colon);
    cred.password = decoded!.slice(colon + 1);
  } else {
    const username = str(entry.username);
    const password = str(entry.password);
    if (username) cred.username = username;
    if (password) cred.password = password;
  }
  const identityToken = str(entry.identitytoken);
  const registryToken = str(entry.registrytoken);
  if (identityToken) cred.identityToken = identityToken;
  if (registryToken) cred.registryToken = registryToken;
  return cred;
}

/** Finds an executable by name on a PATH string (the store's env, not necessarily process.env). */
function findOnPath(program: string, pathVar: string | undefined): string | undefined {
  if (isAbsolute(program)) return isExecutable(program) ? program : undefined;
  for (const dir of (pathVar ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, program);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}
