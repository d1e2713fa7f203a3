/**
 * Keyless signing through Sigstore's own client library (@sigstore/sign): an ephemeral key, a
 * Fulcio certificate for the CI job's OIDC identity and a Rekor entry, turned into cosign's
 * annotations (signature, certificate, chain, Rekor bundle). No crypto is written here.
 */
import {
  FulcioSigner,
  MessageSignatureBundleBuilder,
  RekorWitness,
  type IdentityProvider,
} from '@sigstore/sign';
import type { SignOptions } from '../options.ts';
import { KilnError } from '../util/errors.ts';
import {
  BUNDLE_ANNOTATION,
  CERTIFICATE_ANNOTATION,
  CHAIN_ANNOTATION,
  SIGNATURE_ANNOTATION,
} from './simple-signing.ts';

const AUDIENCE = 'sigstore';

/** The error and its causes (sigstore wraps the HTTP failure), one line. */
function causeText(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e; c && parts.length < 4; c = (c as { cause?: unknown }).cause)
    parts.push(c instanceof Error ? c.message : String(c));
  return parts.join(': ');
}

function pem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
}

/**
 * The job's OIDC token: given as is (GitLab), or requested once from the Actions token service
 * (GitHub). A fetched token is handed to `onSecret` so the logger redacts it like the others.
 */
export function identityProvider(
  sign: SignOptions,
  onSecret: (s: string) => void = () => {},
): IdentityProvider {
  let fetched: Promise<string> | undefined;
  return {
    getToken: () => {
      if (sign.idToken) return Promise.resolve(sign.idToken);
      fetched ??= requestToken(sign).then((t) => (onSecret(t), t));
      return fetched;
    },
  };
}

async function requestToken(sign: SignOptions): Promise<string> {
  const req = sign.tokenRequest;
  if (!req) throw new KilnError('usage', 'SIGN_NO_IDENTITY', 'no OIDC token for keyless signing');
  const url = new URL(req.url);
  url.searchParams.set('audience', AUDIENCE);
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${req.token}`, accept: 'application/json' },
  });
  if (!res.ok)
    throw new KilnError(
      'registry',
      'SIGN_KEYLESS_FAILED',
      `the OIDC token request answered HTTP ${res.status}`,
      {
        hint: 'give the job `permissions: id-token: write`',
      },
    );
  const body = (await res.json()) as { value?: unknown };
  if (typeof body.value !== 'string')
    throw new KilnError('registry', 'SIGN_KEYLESS_FAILED', 'the OIDC token response has no token');
  return body.value;
}

/**
 * Asks for a token before the build so a job without the permission fails before anything is
 * pushed; the signing later asks again (a GitHub token is short-lived, a build may be long).
 */
export async function checkIdentity(
  sign: SignOptions,
  onSecret: (s: string) => void = () => {},
): Promise<void> {
  if (sign.idToken) return;
  onSecret(await requestToken(sign));
}

/** A keyless signer: each payload gets an ephemeral key, a Fulcio certificate and a Rekor entry. */
export function keylessSigner(
  sign: SignOptions,
  onSecret?: (s: string) => void,
): (payload: Buffer) => Promise<Record<string, string>> {
  const provider = identityProvider(sign, onSecret);
  const tokens: string[] = [];
  const recording: IdentityProvider = {
    getToken: async () => {
      const t = await provider.getToken();
      if (!tokens.includes(t)) tokens.push(t);
      return t;
    },
  };
  return (payload) => signKeyless(payload, sign, recording, tokens);
}

/** The library's messages can quote the token (e.g. "invalid identity token: <jwt>"). */
function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 2) out = out.split(s).join('***');
  return out;
}

async function signKeyless(
  payload: Buffer,
  sign: SignOptions,
  provider: IdentityProvider,
  tokens: string[],
): Promise<Record<string, string>> {
  const signer = new FulcioSigner({
    fulcioBaseURL: sign.fulcioUrl ?? 'https://fulcio.sigstore.dev',
    identityProvider: provider,
  });
  const witness = new RekorWitness({ rekorBaseURL: sign.rekorUrl ?? 'https://rekor.sigstore.dev' });
  let bundle;
  try {
    bundle = await new MessageSignatureBundleBuilder({ signer, witnesses: [witness] }).create({
      data: payload,
    });
  } catch (e) {
    // sigstore wraps what the identity provider threw (kiln's own error, with its hint).
    for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) if (c instanceof KilnError) throw c;
    throw new KilnError(
      'registry',
      'SIGN_KEYLESS_FAILED',
      `keyless signing failed: ${scrub(causeText(e), tokens)}`,
      {
        hint: 'check that Fulcio and Rekor are reachable and that the OIDC token is for the audience "sigstore"',
      },
    );
  }
  const content = bundle.content;
  if (content.$case !== 'messageSignature')
    throw new KilnError('internal', 'UNEXPECTED', 'sigstore returned a DSSE bundle');
  const vm = bundle.verificationMaterial.content;
  const certs =
    vm.$case === 'x509CertificateChain'
      ? vm.x509CertificateChain.certificates.map((c) => c.rawBytes)
      : vm.$case === 'certificate'
        ? [vm.certificate.rawBytes]
        : [];
  if (!certs[0]) throw new KilnError('internal', 'UNEXPECTED', 'sigstore returned no certificate');
  const out: Record<string, string> = {
    [SIGNATURE_ANNOTATION]: content.messageSignature.signature.toString('base64'),
    [CERTIFICATE_ANNOTATION]: pem(certs[0]),
  };
  if (certs.length > 1) out[CHAIN_ANNOTATION] = certs.slice(1).map(pem).join('');
  const entry = bundle.verificationMaterial.tlogEntries[0];
  if (entry?.inclusionPromise) {
    // cosign's RekorBundle: the entry and its signed timestamp, verifiable offline.
    out[BUNDLE_ANNOTATION] = JSON.stringify({
      SignedEntryTimestamp: entry.inclusionPromise.signedEntryTimestamp.toString('base64'),
      Payload: {
        body: entry.canonicalizedBody.toString('base64'),
        integratedTime: Number(entry.integratedTime),
        logIndex: Number(entry.logIndex),
        logID: entry.logId.keyId.toString('hex'),
      },
    });
  }
  return out;
}
