/**
 * Loopback Sigstore for keyless-signing tests: one HTTP server answering as Fulcio
 * (`POST /api/v2/signingCert`) and Rekor (`POST /api/v1/log/entries`) with @sigstore/mock's own
 * handlers (a real CA issuing a real certificate for the token's subject, a real signed log
 * entry), and as the GitHub Actions ID-token service (`GET /token?audience=…`, bearer-checked).
 * kiln runs as a child process, so nock-style in-process interception cannot reach it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  fulcioHandler,
  initializeCA,
  initializeCTLog,
  initializeTLog,
  rekorHandler,
  type HandlerFn,
} from '@sigstore/mock';

export interface SigstoreStandIn {
  url: string;
  /** The OIDC token (an unsigned JWT: the mock CA decodes it without checking a signature). */
  idToken: string;
  /** The bearer the token service wants (GitHub's ACTIONS_ID_TOKEN_REQUEST_TOKEN). */
  requestToken: string;
  subject: string;
  issuer: string;
  /** The mock CA's root certificate (PEM) and the key Rekor signs entry timestamps with (SPKI PEM). */
  rootPem: string;
  rekorPublicKeyPem: string;
  /** What the token service was asked: audience of each request. */
  tokenRequests: string[];
  fulcioRequests: number;
  rekorRequests: number;
  stop(): Promise<void>;
}

function pemCert(der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

function b64url(o: unknown): string {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}

export async function startSigstore(claims: Record<string, string> = {}): Promise<SigstoreStandIn> {
  const keyPair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ca = await initializeCA(keyPair, await initializeCTLog(keyPair));
  const fulcio = fulcioHandler(ca, { strict: true });
  const subject = claims.sub ?? 'https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main';
  const issuer = claims.iss ?? 'https://token.actions.githubusercontent.com';
  const now = Math.floor(Date.now() / 1000);
  // The signature part is random so a grep for the token cannot match anything by chance.
  const idToken = [
    b64url({ alg: 'RS256', typ: 'JWT' }),
    b64url({ ...claims, sub: subject, iss: issuer, aud: 'sigstore', iat: now, exp: now + 600 }),
    randomBytes(48).toString('base64url'),
  ].join('.');
  const requestToken = `req-${randomBytes(24).toString('hex')}`;
  // Rekor's handler needs the server's URL, known once it listens.
  const late: { rekor?: { path: string; fn: HandlerFn } } = {};
  const state = { tokenRequests: [] as string[], fulcioRequests: 0, rekorRequests: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (req.method === 'GET' && url.pathname === '/token') {
          if (req.headers.authorization !== `Bearer ${requestToken}`) {
            res.writeHead(401).end();
            return;
          }
          state.tokenRequests.push(url.searchParams.get('audience') ?? '');
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: idToken }));
          return;
        }
        const h =
          url.pathname === fulcio.path ? fulcio : url.pathname === late.rekor?.path ? late.rekor : undefined;
        if (req.method !== 'POST' || !h) {
          res.writeHead(404).end();
          return;
        }
        if (h === fulcio) state.fulcioRequests++;
        else state.rekorRequests++;
        const r = await h.fn(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(r.statusCode, { 'content-type': r.contentType ?? 'text/plain' });
        res.end(typeof r.response === 'string' ? r.response : Buffer.from(r.response.buffer));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  late.rekor = rekorHandler(await initializeTLog(url, keyPair), { strict: true });
  return {
    url,
    idToken,
    requestToken,
    subject,
    issuer,
    rootPem: pemCert(
      Buffer.from(ca.rootCertificate.buffer, ca.rootCertificate.byteOffset, ca.rootCertificate.byteLength),
    ),
    rekorPublicKeyPem: keyPair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    get tokenRequests() {
      return state.tokenRequests;
    },
    get fulcioRequests() {
      return state.fulcioRequests;
    },
    get rekorRequests() {
      return state.rekorRequests;
    },
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
