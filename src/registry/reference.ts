/**
 * Docker image reference parsing with the semantics of distribution/reference ParseNormalizedNamed:
 * `alpine` -> docker.io/library/alpine, `index.docker.io/x` -> docker.io/library/x,
 * `localhost:5000/a/b:1@sha256:...` keeps host, port, tag and digest.
 */
import { KilnError } from '../util/errors.ts';

export interface Reference {
  /** Registry host, with port when given; 'docker.io' for Docker Hub. */
  registry: string;
  /** Repository path, e.g. 'library/alpine'. */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';
const LEGACY_DOCKER_HUB = 'index.docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';
const OFFICIAL_PREFIX = 'library/';
const NAME_TOTAL_LENGTH_MAX = 255;

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6})(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})$/;
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;
/** Hex lengths go-digest accepts for the algorithms it knows. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

const HINT =
  'use a reference like alpine:3.20, ghcr.io/owner/app:v1 or registry.example.com:5000/team/app@sha256:<64 hex digits>';

function bad(text: string, why: string): KilnError {
  return new KilnError('usage', 'BAD_REFERENCE', `invalid image reference ${JSON.stringify(text)}: ${why}`, {
    hint: HINT,
  });
}

/** True when the first path component names a registry host rather than a Docker Hub namespace. */
function looksLikeHost(component: string): boolean {
  return (
    component === 'localhost' ||
    component.includes('.') ||
    component.includes(':') ||
    // distribution treats an uppercase first component as a host too (it cannot be a repo path).
    component.toLowerCase() !== component
  );
}

/** Normalises registry aliases: index.docker.io (and its API host) become docker.io. */
export function normalizeRegistry(host: string): string {
  const h = host.toLowerCase();
  if (h === LEGACY_DOCKER_HUB || h === DOCKER_HUB || h === DOCKER_HUB_API) return DOCKER_HUB;
  return host;
}

/** Parses a Docker image reference, applying Docker Hub defaults (docker.io, library/). */
export function parseReference(text: string): Reference {
  if (typeof text !== 'string' || text.length === 0) throw bad(String(text), 'reference is empty');
  if (text.trim() !== text) throw bad(text, 'reference has leading or trailing whitespace');
  if (IDENTIFIER_RE.test(text)) {
    throw bad(text, 'a 64-character hexadecimal string is an image ID, not a repository name');
  }

  // Split off the digest first: it contains ':' which would confuse the tag split.
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    validateDigest(text, digest);
  }

  // The tag is after the last ':' that follows the last '/' (a ':' before a '/' is a port).
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) {
      throw bad(
        text,
        tag.length > 128
          ? 'tag is longer than 128 characters'
          : `tag ${JSON.stringify(tag)} must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`,
      );
    }
  }
  if (rest.length === 0) throw bad(text, 'repository name is empty');

  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash !== -1 && looksLikeHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    path = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(registry)) throw bad(text, `registry host ${JSON.stringify(registry)} is not valid`);
    const port = /:(\d+)$/.exec(registry)?.[1];
    if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535))
      throw bad(text, `port ${port} is out of range (1-65535)`);
  }
  registry = normalizeRegistry(registry);

  if (path.length === 0) throw bad(text, 'repository name is empty');
  if (path.toLowerCase() !== path) throw bad(text, 'repository name must be lowercase');
  const components = path.split('/');
  for (const c of components) {
    if (c.length === 0) throw bad(text, 'repository name has an empty path component');
    if (!PATH_COMPONENT_RE.test(c)) {
      throw bad(
        text,
        `repository path component ${JSON.stringify(c)} must be lowercase letters and digits separated by '.', '_', '__' or '-'`,
      );
    }
  }
  if (registry === DOCKER_HUB && components.length === 1) path = OFFICIAL_PREFIX + path;

  if (`${registry}/${path}`.length > NAME_TOTAL_LENGTH_MAX) {
    throw bad(text, `repository name must not be longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }

  const ref: Reference = { registry, repository: path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

function validateDigest(text: string, digest: string): void {
  const m = DIGEST_RE.exec(digest);
  if (!m) throw bad(text, `digest ${JSON.stringify(digest)} must look like sha256:<64 hex digits>`);
  const algo = m[1]!;
  const hex = m[2]!;
  const want = DIGEST_HEX_LENGTH[algo];
  if (want === undefined) throw bad(text, `unsupported digest algorithm ${JSON.stringify(algo)}`);
  if (hex.length !== want || !/^[a-f0-9]+$/.test(hex)) {
    throw bad(text, `${algo} digest must be ${want} lowercase hex digits`);
  }
}

/** Full form: `docker.io/library/alpine:latest`, `host:5000/a/b:t@sha256:...`. */
export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${
    ref.digest !== undefined ? `@${ref.digest}` : ''
  }`;
}

/** Short name as `docker` shows it: `alpine`, `user/app`, `ghcr.io/o/app` (no tag or digest). */
export function familiarName(ref: Reference): string {
  if (normalizeRegistry(ref.registry) !== DOCKER_HUB) return `${ref.registry}/${ref.repository}`;
  const rest = ref.repository.startsWith(OFFICIAL_PREFIX) ? ref.repository.slice(OFFICIAL_PREFIX.length) : '';
  return rest !== '' && !rest.includes('/') ? rest : ref.repository;
}

/** Familiar name plus tag and digest: `alpine:3.20`, `ghcr.io/o/app@sha256:...`. */
export function familiarString(ref: Reference): string {
  return `${familiarName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${
    ref.digest !== undefined ? `@${ref.digest}` : ''
  }`;
}

/** Adds the `latest` tag when the reference has neither tag nor digest. */
export function withDefaultTag(ref: Reference): Reference {
  if (ref.tag !== undefined || ref.digest !== undefined) return { ...ref };
  return { ...ref, tag: 'latest' };
}

/** The host to talk the registry HTTP API to: docker.io is served by registry-1.docker.io. */
export function registryApiHost(registry: string): string {
  return normalizeRegistry(registry) === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** `registry/repository`, a key for per-repository state (auth scopes, blob mounts). */
export function repoKey(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}
