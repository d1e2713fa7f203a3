/**
 * A real OCI registry for tests: Debian's Distribution 2.8 (`/usr/bin/docker-registry`) on a free
 * loopback port, optionally behind htpasswd Basic auth or the Docker token protocol. For token auth an
 * in-process token server (node:http) issues RS256 JWTs whose `kid` is the libtrust key ID of a
 * self-signed certificate the registry trusts through `rootcertbundle`.
 */
import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, createSign, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, fetch as undiciFetch } from 'undici';
import { gzipSync } from 'node:zlib';
import { assembleImage } from '../../src/image/assemble.ts';
import { MediaType } from '../../src/image/types.ts';
import type { BuiltImage, LayerBlob } from '../../src/image/types.ts';
import { SetupError } from './setup-error.ts';

const execFileP = promisify(execFile);
const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface TokenServer {
  url: string;
  /** How many tokens were issued so far. */
  issued: number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http://127.0.0.1:PORT` */
  url: string;
  auth: RegistryAuth;
  users: Record<string, string>;
  tokenServer?: TokenServer;
  rootDir: string;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  /** user -> password; defaults to `{ kiln: 'kiln-secret' }` when auth is not 'none'. */
  users?: Record<string, string>;
  /** Serve HTTPS with this certificate and key; `caPath` is the CA that signed it (for the readiness check). */
  tls?: { certPath: string; keyPath: string; caPath: string };
}

export const TOKEN_SERVICE = 'kiln-test-registry';
export const TOKEN_ISSUER = 'kiln-test-issuer';
const REGISTRY_BIN = '/usr/bin/docker-registry';

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

interface SigningMaterial {
  dir: string;
  keyPath: string;
  certPath: string;
  key: KeyObject;
  kid: string;
}

let signing: Promise<SigningMaterial> | undefined;

/** libtrust key ID: base32(sha256(DER SPKI)[:30]) in 12 groups of 4 joined by ':'. */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const b32 = base32(createHash('sha256').update(der).digest().subarray(0, 30));
  const groups: string[] = [];
  for (let i = 0; i < b32.length; i += 4) groups.push(b32.slice(i, i + 4));
  return groups.join(':');
}

function base32(buf: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** RSA key + self-signed cert, made once per process. */
function signingMaterial(): Promise<SigningMaterial> {
  signing ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-test-token-'));
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    await execFileP('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '3650',
      '-subj',
      `/CN=${TOKEN_ISSUER}`,
    ]);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const key = createPrivateKey(await readFile(keyPath));
    return { dir, keyPath, certPath, key, kid: libtrustKeyId(createPublicKey(key)) };
  })();
  return signing;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** Parses `repository:name:pull,push` (the name may itself contain ':' as in `host:5000/x`). */
export function parseScope(scope: string): AccessEntry | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(',')
      .filter((a) => a !== ''),
  };
}

function signJwt(mat: SigningMaterial, subject: string, access: AccessEntry[], ttl: number): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'RS256', kid: mat.kid };
  const claims = {
    iss: TOKEN_ISSUER,
    sub: subject,
    aud: TOKEN_SERVICE,
    exp: now + ttl,
    nbf: now - 10,
    iat: now,
    jti: randomUUID(),
    access,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = createSign('RSA-SHA256').update(input).sign(mat.key);
  return `${input}.${b64url(sig)}`;
}

function basicUser(req: IncomingMessage, users: Record<string, string>): string | null | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined; // anonymous
  const m = /^Basic\s+(.+)$/i.exec(h);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return null;
  const user = decoded.slice(0, i);
  const pass = decoded.slice(i + 1);
  return Object.hasOwn(users, user) && users[user] === pass ? user : null;
}

async function startTokenServer(
  users: Record<string, string>,
  mat: SigningMaterial,
): Promise<{ state: TokenServer; server: Server }> {
  const state: TokenServer = { url: '', issued: 0 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://token');
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (u.pathname !== '/token' || req.method !== 'GET') {
      send(404, { errors: [{ code: 'NOT_FOUND', message: 'only GET /token is served' }] });
      return;
    }
    const user = basicUser(req, users);
    if (user === null) {
      send(
        401,
        { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] },
        { 'www-authenticate': 'Basic realm="kiln-test-token"' },
      );
      return;
    }
    const service = u.searchParams.get('service');
    if (service !== null && service !== TOKEN_SERVICE) {
      send(400, { errors: [{ code: 'DENIED', message: `unknown service ${service}` }] });
      return;
    }
    // Anonymous callers get a token with no access; authenticated users get what they ask for.
    const access: AccessEntry[] = [];
    if (user !== undefined) {
      for (const raw of u.searchParams.getAll('scope')) {
        for (const s of raw.split(' ')) {
          const entry = parseScope(s);
          if (entry) access.push(entry);
        }
      }
    }
    const ttl = 300;
    const token = signJwt(mat, user ?? '', access, ttl);
    state.issued++;
    send(200, { token, access_token: token, expires_in: ttl, issued_at: new Date().toISOString() });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { state, server };
}

async function htpasswdFile(path: string, users: Record<string, string>): Promise<void> {
  const lines: string[] = [];
  for (const [user, pass] of Object.entries(users)) {
    const { stdout } = await execFileP('htpasswd', ['-Bbn', user, pass]);
    lines.push(stdout.trim());
  }
  await writeFile(path, lines.join('\n') + '\n');
}

function yamlStr(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

async function waitReady(
  url: string,
  child: ChildProcess,
  stderr: () => string,
  caPath?: string,
): Promise<void> {
  const dispatcher = caPath ? new Agent({ connect: { ca: await readFile(caPath) } }) : undefined;
  const deadline = Date.now() + 20_000;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new SetupError('internal', 'TEST_REGISTRY_EXITED', `docker-registry exited early: ${stderr()}`, {
        hint: 'check the generated config.yml and that /usr/bin/docker-registry works',
      });
    }
    try {
      const r = await undiciFetch(`${url}/v2/`, {
        signal: AbortSignal.timeout(2000),
        ...(dispatcher ? { dispatcher } : {}),
      });
      await r.arrayBuffer();
      if (r.status === 200 || r.status === 401) {
        await dispatcher?.close();
        return;
      }
      lastErr = new Error(`status ${r.status}`);
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new SetupError('internal', 'TEST_REGISTRY_TIMEOUT', `docker-registry did not answer ${url}/v2/`, {
    hint: `last error: ${String(lastErr)}; stderr: ${stderr().slice(-500)}`,
  });
}

/** Starts a throwaway registry; call `stop()` when done. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? 'none';
  const users = opts.users ?? (auth === 'none' ? {} : { kiln: 'kiln-secret' });
  const rootDir = await mkdtemp(join(tmpdir(), 'kiln-test-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const url = `${opts.tls ? 'https' : 'http'}://${host}`;

  let tokenServer: { state: TokenServer; server: Server } | undefined;
  const authLines: string[] = [];
  if (auth === 'htpasswd') {
    const path = join(rootDir, 'htpasswd');
    await htpasswdFile(path, users);
    authLines.push('auth:', '  htpasswd:', '    realm: kiln-test', `    path: ${yamlStr(path)}`);
  } else if (auth === 'token') {
    const mat = await signingMaterial();
    tokenServer = await startTokenServer(users, mat);
    authLines.push(
      'auth:',
      '  token:',
      `    realm: ${yamlStr(`${tokenServer.state.url}/token`)}`,
      `    service: ${TOKEN_SERVICE}`,
      `    issuer: ${TOKEN_ISSUER}`,
      `    rootcertbundle: ${yamlStr(mat.certPath)}`,
    );
  }
  const config = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${yamlStr(join(rootDir, 'data'))}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${host}`,
    '  secret: kiln-test-secret',
    ...(opts.tls
      ? ['  tls:', `    certificate: ${yamlStr(opts.tls.certPath)}`, `    key: ${yamlStr(opts.tls.keyPath)}`]
      : []),
    ...authLines,
    '',
  ].join('\n');
  const configPath = join(rootDir, 'config.yml');
  await writeFile(configPath, config);

  const child = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let errText = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    errText = (errText + d).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', (e) => {
    errText += `\nspawn error: ${e.message}`;
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    if (tokenServer) {
      const srv = tokenServer.server;
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
    await rm(rootDir, { recursive: true, force: true });
  };

  try {
    await waitReady(url, child, () => errText, opts.tls?.caPath);
  } catch (e) {
    await stop();
    throw e;
  }

  const reg: TestRegistry = { host, url, auth, users, rootDir, stop };
  if (tokenServer) reg.tokenServer = tokenServer.state;
  return reg;
}

/** `user:pass` of the registry's first user, for `skopeo --creds`, or undefined without auth. */
export function registryCreds(reg: TestRegistry): string | undefined {
  const first = Object.entries(reg.users)[0];
  return reg.auth === 'none' || !first ? undefined : `${first[0]}:${first[1]}`;
}

/** Value of an Authorization header for `reg` (Basic for htpasswd, a fresh Bearer for token). */
export async function authHeader(reg: TestRegistry, scopes: string[] = []): Promise<string | undefined> {
  const creds = registryCreds(reg);
  if (!creds) return undefined;
  const basic = `Basic ${Buffer.from(creds).toString('base64')}`;
  if (reg.auth === 'htpasswd') return basic;
  const q = new URLSearchParams({ service: TOKEN_SERVICE });
  for (const s of scopes) q.append('scope', s);
  const r = await fetch(`${reg.tokenServer!.url}/token?${q}`, { headers: { authorization: basic } });
  if (r.status !== 200) {
    throw new SetupError('registry', 'TEST_TOKEN_FAILED', `token server answered ${r.status}`, {
      hint: 'check the test registry users',
    });
  }
  const body = (await r.json()) as { token: string };
  return `Bearer ${body.token}`;
}

/** A gzip "layer" of seeded random bytes (the registry checks digests, not tar contents). */
function layer(rand: () => number, size: number, dir: string, name: string): Promise<LayerBlob> {
  const raw = Buffer.alloc(size);
  for (let i = 0; i < size; i++) raw[i] = Math.floor(rand() * 256);
  const gz = gzipSync(raw, { level: 1 });
  const path = join(dir, `${name}.gz`);
  return writeFile(path, gz).then(() => ({
    descriptor: { mediaType: MediaType.OciLayerGzip, digest: sha256(gz), size: gz.length },
    diffId: sha256(raw),
    path,
  }));
}

/** A small image of seeded random layers (one below 16 KiB, one above), OCI or Docker at random unless given. */
export async function smallImage(
  rand: () => number,
  dir: string,
  name: string,
  format?: 'oci' | 'docker',
): Promise<BuiltImage> {
  // One layer below the 16 KiB monolithic limit set below, one above it (chunked PATCHes).
  const l1 = await layer(rand, 2000 + Math.floor(rand() * 6000), dir, `${name}-a`);
  const l2 = await layer(rand, 20_000 + Math.floor(rand() * 20_000), dir, `${name}-b`);
  return assembleImage({
    config: {
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      os: 'linux',
      config: { Labels: { op: name } },
      rootfs: { type: 'layers', diff_ids: [] },
    },
    layers: [l1, l2],
    format: format ?? (rand() < 0.5 ? 'oci' : 'docker'),
    annotations: { 'org.opencontainers.image.title': name },
  });
}
