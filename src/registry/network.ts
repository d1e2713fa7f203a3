/**
 * How registry traffic leaves the machine: which forward proxy a URL goes through (HTTP_PROXY,
 * HTTPS_PROXY, NO_PROXY as curl and Go read them) and which certificates its TLS trusts or presents
 * (SSL_CERT_FILE, SSL_CERT_DIR, NODE_EXTRA_CA_CERTS, --registry-certificate files and Docker-style
 * certificate directories). Pure functions of the environment and the files named; no sockets.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { KilnError } from '../util/errors.ts';

export type Env = Readonly<Record<string, string | undefined>>;

function envOf(env: Env, name: string): string | undefined {
  // Lower case first, as curl and undici do; curl reads no upper-case HTTP_PROXY at all.
  const v = env[name.toLowerCase()] ?? env[name.toUpperCase()];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** IPv4/IPv6 address → bits as a bigint with its width, for CIDR comparison. */
function ipBits(ip: string): { bits: bigint; width: number } | undefined {
  const v = isIP(ip);
  if (v === 4) {
    const n = ip.split('.').reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
    return { bits: n, width: 32 };
  }
  if (v !== 6) return undefined;
  const [head = '', tail = ''] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return { bits: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n), width: 128 };
}

function inCidr(host: string, cidr: string): boolean {
  const [net = '', lenText = ''] = cidr.split('/');
  const a = ipBits(host);
  const b = ipBits(net);
  const len = Number(lenText);
  if (!a || !b || a.width !== b.width || !Number.isInteger(len) || len < 0 || len > a.width) return false;
  const shift = BigInt(a.width - len);
  return a.bits >> shift === b.bits >> shift;
}

/**
 * Whether NO_PROXY exempts `host` (`port`): `*` exempts everything; `example.com`, `.example.com`
 * and `*.example.com` exempt the domain and its subdomains; `host:port` only that port; IP addresses
 * and CIDR ranges (`10.0.0.0/8`) match addresses. Loopback is not exempt unless listed (as curl; Go
 * never proxies loopback).
 */
export function noProxyMatches(host: string, port: number, noProxy: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (inCidr(h, entry)) return true;
      continue;
    }
    let entryPort = 0;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m && isIP(entry) !== 6) {
      entry = m[1]!;
      entryPort = Number(m[2]);
    }
    entry = entry.replace(/^\[|\]$/g, '').replace(/^\*?\./, '');
    if (entryPort !== 0 && entryPort !== port) continue;
    if (h === entry || (isIP(h) === 0 && h.endsWith(`.${entry}`))) return true;
  }
  return false;
}

export interface ProxyChoice {
  /** The proxy URL, credentials included (never print it: see `shownProxy`). */
  uri: string;
  /** Which variable named it, for messages. */
  from: string;
}

/** The forward proxy for a registry URL, or undefined for a direct connection. */
export function proxyFor(url: URL, env: Env): ProxyChoice | undefined {
  const https = url.protocol === 'https:';
  const name = https ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  const uri = envOf(env, name);
  if (!uri) return undefined;
  const port = Number(url.port) || (https ? 443 : 80);
  if (noProxyMatches(url.hostname, port, envOf(env, 'NO_PROXY') ?? '')) return undefined;
  // A proxy given without a scheme is an HTTP proxy, as curl and Go read it.
  return { uri: /^[a-z][a-z0-9+.-]*:\/\//i.test(uri) ? uri : `http://${uri}`, from: name };
}

/** A proxy URL without its credentials. */
export function shownProxy(uri: string): string {
  try {
    const u = new URL(uri);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(unparsable proxy URL)';
  }
}

function readTls(path: string, what: string, why: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new KilnError('usage', 'BAD_CERTIFICATE', `cannot read ${what} ${path}`, {
      hint: `check ${why}`,
      cause: e,
    });
  }
}

function isDir(path: string, why: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch (e) {
    throw new KilnError('usage', 'BAD_CERTIFICATE', `cannot read certificate path ${path}`, {
      hint: `check ${why}`,
      cause: e,
    });
  }
}

/** Every PEM certificate file directly in `dir` (OpenSSL hash links included); unreadable ones skipped. */
function pemFilesIn(dir: string): Buffer[] {
  const out: Buffer[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    try {
      if (!statSync(p).isFile()) continue;
      const b = readFileSync(p);
      if (b.includes('-----BEGIN CERTIFICATE-----')) out.push(b);
    } catch {
      // A dangling hash link or a file without read permission: OpenSSL skips it too.
    }
  }
  return out;
}

export interface TlsMaterial {
  ca: Buffer[];
  cert?: Buffer;
  key?: Buffer;
}

/**
 * What a certificate path gives: a file is a CA bundle; a directory is read as Docker's
 * certs.d/<host>/ (and Kimia's --registry-certificate DIR): `*.crt` are CAs, `client.cert` or
 * `<name>.cert` with its `<name>.key` is the client certificate.
 */
export function tlsFromPath(path: string, why: string): TlsMaterial {
  if (!isDir(path, why)) return { ca: [readTls(path, 'CA bundle', why)] };
  const names = readdirSync(path).sort();
  const ca = names.filter((n) => n.endsWith('.crt')).map((n) => readTls(join(path, n), 'CA', why));
  const certName = names.find((n) => n.endsWith('.cert') && names.includes(`${n.slice(0, -5)}.key`));
  if (!certName) return { ca };
  return {
    ca,
    cert: readTls(join(path, certName), 'client certificate', why),
    key: readTls(join(path, `${certName.slice(0, -5)}.key`), 'client key', why),
  };
}

/** Subdirectories of a global certificate directory named like a registry host (certs.d layout). */
export function hostDirsIn(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory() && /[.:]|^localhost$/.test(e.name)) out[e.name] = join(dir, e.name);
    }
  } catch {
    // not a directory: a CA bundle file, no hosts
  }
  return out;
}

/**
 * CAs from the environment, added to Node's bundled roots: SSL_CERT_FILE (a bundle) and SSL_CERT_DIR
 * (colon-separated directories), as OpenSSL and Go name them, and NODE_EXTRA_CA_CERTS, which Node
 * applies by itself but which an explicit CA list would otherwise drop.
 */
export function envCas(env: Env): Buffer[] {
  const out: Buffer[] = [];
  for (const name of ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE']) {
    const f = env[name];
    if (f) out.push(readTls(f, `CA bundle (${name})`, `the file ${name} names`));
  }
  for (const d of (env.SSL_CERT_DIR ?? '').split(':').filter(Boolean)) {
    try {
      out.push(...pemFilesIn(d));
    } catch (e) {
      throw new KilnError('usage', 'BAD_CERTIFICATE', `cannot read SSL_CERT_DIR directory ${d}`, {
        hint: 'SSL_CERT_DIR is a colon-separated list of directories of PEM certificates',
        cause: e,
      });
    }
  }
  return out;
}

/** Node's bundled roots plus `extra`; undefined when there is nothing extra (Node's defaults apply). */
export function caList(extra: Buffer[]): (string | Buffer)[] | undefined {
  return extra.length === 0 ? undefined : [...rootCertificates, ...extra];
}
