/**
 * Signs pushed manifests the way `cosign sign` does and pushes each signature as
 * `<repo>:sha256-<hex>.sig`: with a cosign/PEM key (ECDSA P-256, SHA-256, DER signature) or
 * keyless. The key is loaded (and its password checked) before the build, so a bad key pushes
 * nothing.
 */
import { readFile } from 'node:fs/promises';
import { sign as signData } from 'node:crypto';
import { Readable } from 'node:stream';
import type { SignOptions } from '../options.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { Reference } from '../registry/reference.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import { loadSigningKey, type SigningKey } from './cosign-key.ts';
import {
  SIGNATURE_ANNOTATION,
  signatureImage,
  signatureTag,
  simpleSigningPayload,
} from './simple-signing.ts';

export interface Signer {
  keyless: boolean;
  /** Annotations of the signature layer for `payload`. */
  sign(payload: Buffer): Promise<Record<string, string>>;
  publicKeyPem?: string;
}

export interface PushedSignature {
  subject: string;
  tag: string;
  digest: string;
  keyless: boolean;
}

/**
 * The signer the options ask for; the key is read and decrypted now. `onSecret` receives secrets
 * learnt later (the OIDC token fetched from the Actions token service) for redaction.
 */
export async function prepareSigner(
  sign: SignOptions,
  onSecret?: (s: string) => void,
): Promise<Signer | undefined> {
  if (!sign.enabled) return undefined;
  if (!sign.key) {
    // Loaded only for keyless signing: @sigstore/sign and its TUF and fetch stack are a fifth of the
    // bundle, and evaluating them cost every kiln start ~20 ms.
    const { checkIdentity, keylessSigner } = await import('./keyless.ts');
    await checkIdentity(sign, onSecret);
    return { keyless: true, sign: keylessSigner(sign, onSecret) };
  }
  let text: string;
  try {
    text = await readFile(sign.key, 'utf8');
  } catch (e) {
    throw new KilnError(
      'usage',
      'SIGN_KEY_INVALID',
      `cannot read --cosign-key ${sign.key}: ${(e as Error).message}`,
      {
        hint: 'pass the path of the cosign.key file',
      },
    );
  }
  const key: SigningKey = loadSigningKey(text, sign.password, sign.key, sign.passwordEnv);
  return {
    keyless: false,
    publicKeyPem: key.publicKeyPem,
    sign: async (payload) => ({
      [SIGNATURE_ANNOTATION]: signData('sha256', payload, key.privateKey).toString('base64'),
    }),
  };
}

/** Signs every digest for every repository and pushes the `.sig` manifests. */
export async function pushSignatures(
  signer: Signer,
  client: RegistryClient,
  repositories: Reference[],
  digests: string[],
  logger: Logger,
): Promise<PushedSignature[]> {
  const out: PushedSignature[] = [];
  for (const repo of repositories) {
    for (const digest of digests) {
      const payload = simpleSigningPayload(`${repo.registry}/${repo.repository}`, digest);
      const { image, blobs } = signatureImage(payload, await signer.sign(payload));
      const tag = signatureTag(digest);
      await client.pushImage(image, [{ ...repo, tag }], (l) =>
        Readable.from([blobs.get(l.descriptor.digest)!]),
      );
      logger.info(
        `signed ${digest.slice(0, 19)} (${signer.keyless ? 'keyless' : 'key'}): ${repo.registry}/${repo.repository}:${tag}`,
      );
      out.push({
        subject: digest,
        tag: `${repo.registry}/${repo.repository}:${tag}`,
        digest: image.digest,
        keyless: signer.keyless,
      });
    }
  }
  return out;
}
