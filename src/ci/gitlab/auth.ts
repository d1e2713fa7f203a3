/**
 * The job's registry logins as one private Docker config: every entry of DOCKER_AUTH_CONFIG (the
 * CI/CD variable GitLab's own docs use for private registries, given as JSON or as a File-type
 * variable's path), then the runner's own config.json, then the job token for $CI_REGISTRY and the
 * dependency proxy. Earlier sources win for the same host, so a deliberate login is never replaced
 * by the job token. Passwords stay in the 0600 file; only host names are logged.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../../util/errors.ts';

type Env = NodeJS.ProcessEnv;

export interface DockerConfigJson {
  auths?: Record<string, unknown>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

export interface Logins {
  config: DockerConfigJson;
  /** Registry host → where its login came from, for the job log. */
  hosts: Record<string, string>;
}

function parse(text: string, origin: string): DockerConfigJson {
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as DockerConfigJson;
  } catch {
    // reported below without echoing the text: it holds credentials
  }
  throw new KilnError('registry', 'BAD_DOCKER_CONFIG', `${origin} is not a JSON Docker config`, {
    hint: 'it must look like {"auths":{"registry.example.com":{"auth":"<base64 user:password>"}}}',
  });
}

/** DOCKER_AUTH_CONFIG as JSON text, or the file a File-type CI/CD variable points at. */
export function authConfigFromEnv(env: Env): DockerConfigJson | null {
  const raw = env.DOCKER_AUTH_CONFIG?.trim();
  if (!raw) return null;
  if (!raw.startsWith('{') && existsSync(raw) && statSync(raw).isFile())
    return parse(readFileSync(raw, 'utf8'), `DOCKER_AUTH_CONFIG (file ${raw})`);
  return parse(raw, 'DOCKER_AUTH_CONFIG');
}

/** The runner's config.json in `dir`, {} when absent. */
export function readConfigDir(dir: string): DockerConfigJson {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) return {};
  return parse(readFileSync(file, 'utf8'), `Docker config ${file}`);
}

function tokenLogins(env: Env): [string, string, string, string][] {
  const out: [string, string, string, string][] = [];
  const add = (host: string | undefined, user?: string, password?: string, origin = ''): void => {
    if (host && user && password) out.push([host, user, password, origin]);
  };
  add(env.CI_REGISTRY, env.CI_REGISTRY_USER, env.CI_REGISTRY_PASSWORD, 'CI_REGISTRY_USER');
  const proxy = env.CI_DEPENDENCY_PROXY_SERVER;
  const [pu, pp] = [env.CI_DEPENDENCY_PROXY_USER, env.CI_DEPENDENCY_PROXY_PASSWORD];
  add(proxy, pu, pp, 'CI_DEPENDENCY_PROXY_USER');
  // The proxy server is host:443, but image prefixes may name the host alone.
  if (proxy?.endsWith(':443')) add(proxy.slice(0, -4), pu, pp, 'CI_DEPENDENCY_PROXY_USER');
  return out;
}

/** Merges the sources in precedence order; null when none has anything. */
export function jobLogins(env: Env, existing: DockerConfigJson): Logins | null {
  const sources: [string, DockerConfigJson][] = [];
  const fromEnv = authConfigFromEnv(env);
  if (fromEnv) sources.push(['DOCKER_AUTH_CONFIG', fromEnv]);
  sources.push(['Docker config', existing]);
  const tokens: Record<string, unknown> = {};
  const tokenOrigin: Record<string, string> = {};
  for (const [host, user, password, origin] of tokenLogins(env)) {
    tokens[host] ??= { auth: Buffer.from(`${user}:${password}`).toString('base64') };
    tokenOrigin[host] ??= origin;
  }
  const config: DockerConfigJson = {};
  const auths: Record<string, unknown> = {};
  const credHelpers: Record<string, string> = {};
  const hosts: Record<string, string> = {};
  for (const [origin, c] of sources) {
    for (const [k, v] of Object.entries(c))
      if (!['auths', 'credHelpers'].includes(k) && !(k in config)) config[k] = v;
    for (const [host, v] of Object.entries(c.auths ?? {})) {
      if (host in auths) continue;
      auths[host] = v;
      hosts[host] = origin;
    }
    for (const [host, v] of Object.entries(c.credHelpers ?? {})) {
      if (host in credHelpers) continue;
      credHelpers[host] = v;
      hosts[host] ??= `${origin} (credential helper ${v})`;
    }
  }
  for (const [host, v] of Object.entries(tokens)) {
    if (host in auths || host in credHelpers) continue;
    auths[host] = v;
    hosts[host] = tokenOrigin[host]!;
  }
  if (Object.keys(hosts).length === 0 && Object.keys(config).length === 0) return null;
  return {
    config: {
      ...config,
      ...(Object.keys(auths).length ? { auths } : {}),
      ...(Object.keys(credHelpers).length ? { credHelpers } : {}),
    },
    hosts,
  };
}
