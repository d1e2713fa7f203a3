/**
 * Checks one cosign signature layer (simple-signing payload + annotations) the way cosign reads
 * it: the payload must name the signed digest; the signature verifies with --key, or, keyless,
 * with the key of the certificate in the annotation, whose identity (SAN) and OIDC issuer
 * (Fulcio's extensions) are reported. The certificate's chain and the Rekor entry are only
 * read, not verified: that needs Sigstore's trust root (`cosign verify` does it).
 */
import { X509Certificate as NodeCertificate, verify, type KeyObject } from 'node:crypto';
import { ASN1Obj, X509Certificate } from '@sigstore/core';
import { BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, SIGNATURE_ANNOTATION } from '../sign/simple-signing.ts';
import type { SignatureEntry } from './report.ts';

// Fulcio's OIDC issuer extensions: v2 (DER UTF8String) and the legacy v1 (raw bytes).
const ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';
const ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';

function issuerOf(pem: string): string | undefined {
  try {
    const cert = X509Certificate.parse(pem);
    const v2 = cert.extension(ISSUER_V2);
    // extnValue's octets are the DER UTF8String; its content is the issuer.
    if (v2) return ASN1Obj.parseBuffer(Buffer.from(v2.value)).value.toString('utf8');
    return cert.extension(ISSUER_V1)?.value.toString('utf8');
  } catch {
    return undefined;
  }
}

/** `URI:https://…` or `email:a@b` → the value; the first name only (Fulcio issues one). */
function identityOf(cert: NodeCertificate): string | undefined {
  const san = cert.subjectAltName?.split(', ')[0];
  return san?.replace(/^(URI|email|DNS):/, '');
}

function payloadDigest(payload: Buffer): { digest?: string; reference?: string } {
  try {
    const doc = JSON.parse(payload.toString('utf8')) as {
      critical?: {
        identity?: { 'docker-reference'?: unknown };
        image?: { 'docker-manifest-digest'?: unknown };
      };
    };
    const d = doc.critical?.image?.['docker-manifest-digest'];
    const r = doc.critical?.identity?.['docker-reference'];
    return {
      ...(typeof d === 'string' ? { digest: d } : {}),
      ...(typeof r === 'string' ? { reference: r } : {}),
    };
  } catch {
    return {};
  }
}

function rekorLogIndex(annotations: Record<string, string>): number | undefined {
  const text = annotations[BUNDLE_ANNOTATION];
  if (!text) return undefined;
  try {
    const idx = (JSON.parse(text) as { Payload?: { logIndex?: unknown } }).Payload?.logIndex;
    return typeof idx === 'number' ? idx : undefined;
  } catch {
    return undefined;
  }
}

export function checkSignature(
  subject: string,
  tag: string,
  payload: Buffer,
  annotations: Record<string, string>,
  key: KeyObject | undefined,
): SignatureEntry {
  const { digest, reference } = payloadDigest(payload);
  const sig = Buffer.from(annotations[SIGNATURE_ANNOTATION] ?? '', 'base64');
  const certPem = annotations[CERTIFICATE_ANNOTATION];
  const base = {
    subject,
    tag,
    payloadMatches: digest === subject,
    ...(reference ? { dockerReference: reference } : {}),
    keyless: certPem !== undefined,
  };
  const ok = (k: KeyObject | NodeCertificate['publicKey']): boolean => {
    try {
      return sig.length > 0 && verify('sha256', payload, k, sig);
    } catch {
      return false;
    }
  };
  const mismatch = base.payloadMatches ? undefined : `the payload names ${digest ?? 'no digest'}`;
  if (key) {
    const good = ok(key) && base.payloadMatches;
    return {
      ...base,
      status: good ? 'key' : 'failed',
      ...(good ? {} : { reason: mismatch ?? 'the signature does not verify with --key' }),
    };
  }
  if (certPem === undefined)
    return { ...base, status: 'unchecked', reason: 'signed with a key: pass --key to verify' };
  let cert: NodeCertificate;
  try {
    cert = new NodeCertificate(certPem);
  } catch (e) {
    return { ...base, status: 'failed', reason: `unreadable certificate: ${(e as Error).message}` };
  }
  const identity = identityOf(cert);
  const issuer = issuerOf(certPem);
  const logIndex = rekorLogIndex(annotations);
  const good = ok(cert.publicKey) && base.payloadMatches;
  return {
    ...base,
    status: good ? 'certificate' : 'failed',
    ...(identity ? { identity } : {}),
    ...(issuer ? { issuer } : {}),
    ...(logIndex !== undefined ? { rekorLogIndex: logIndex } : {}),
    ...(good ? {} : { reason: mismatch ?? "the signature does not verify with the certificate's key" }),
  };
}
