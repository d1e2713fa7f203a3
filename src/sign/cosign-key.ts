/**
 * cosign private keys: the encrypted PEM `cosign generate-key-pair` writes (`ENCRYPTED SIGSTORE
 * PRIVATE KEY`, older `ENCRYPTED COSIGN PRIVATE KEY`: JSON of go-securesystemslib's `encrypted`
 * package, scrypt KDF + NaCl secretbox over the PKCS#8 DER key) and plain PKCS#8 / SEC1 EC PEMs.
 * scrypt is Node's; XSalsa20-Poly1305 comes from @noble/ciphers (Node has no XSalsa20).
 */
import { createPrivateKey, createPublicKey, scryptSync, type KeyObject } from 'node:crypto';
import { secretbox } from '@noble/ciphers/salsa.js';
import { KilnError } from '../util/errors.ts';

const ENCRYPTED_TYPES = ['ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY'];

interface EncryptedKey {
  kdf?: { name?: string; params?: { N?: number; r?: number; p?: number }; salt?: string };
  cipher?: { name?: string; nonce?: string };
  ciphertext?: string;
}

function invalid(what: string, why: string): KilnError {
  return new KilnError('usage', 'SIGN_KEY_INVALID', `${what}: ${why}`, {
    hint: 'pass a key from `cosign generate-key-pair` or an EC private key in PKCS#8 PEM',
  });
}

function pemBlock(text: string): { type: string; der: Buffer } | undefined {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) return undefined;
  return { type: m[1]!, der: Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64') };
}

function decrypt(json: Buffer, password: string | undefined, what: string, passwordEnv?: string): Buffer {
  let doc: EncryptedKey;
  try {
    doc = JSON.parse(json.toString('utf8')) as EncryptedKey;
  } catch {
    throw invalid(what, 'the encrypted key is not cosign JSON');
  }
  const { kdf, cipher } = doc;
  if (
    kdf?.name !== 'scrypt' ||
    cipher?.name !== 'nacl/secretbox' ||
    !kdf.salt ||
    !cipher.nonce ||
    !doc.ciphertext
  )
    throw invalid(what, `unsupported encryption (${kdf?.name ?? '?'} / ${cipher?.name ?? '?'})`);
  if (password === undefined)
    throw new KilnError('usage', 'SIGN_KEY_PASSWORD', `${what} is encrypted and no password was given`, {
      hint: passwordEnv
        ? `set ${passwordEnv} to the key's password`
        : 'pass --cosign-password-env <VAR> naming the variable that holds the password',
    });
  const N = kdf.params?.N ?? 32768;
  const r = kdf.params?.r ?? 8;
  const p = kdf.params?.p ?? 1;
  const key = scryptSync(password, Buffer.from(kdf.salt, 'base64'), 32, {
    N,
    r,
    p,
    maxmem: 256 * N * r + (1 << 20),
  });
  try {
    const box = secretbox(new Uint8Array(key), new Uint8Array(Buffer.from(cipher.nonce, 'base64')));
    return Buffer.from(box.open(new Uint8Array(Buffer.from(doc.ciphertext, 'base64'))));
  } catch {
    throw new KilnError('usage', 'SIGN_KEY_PASSWORD', `${what}: wrong password (the key does not decrypt)`, {
      hint: passwordEnv ? `check the value of ${passwordEnv}` : 'check the key password',
    });
  }
}

export interface SigningKey {
  privateKey: KeyObject;
  /** SubjectPublicKeyInfo PEM, as `cosign public-key` prints it. */
  publicKeyPem: string;
}

/** Reads a cosign or PEM EC private key. `what` names the file in messages. */
export function loadSigningKey(
  text: string,
  password: string | undefined,
  what: string,
  passwordEnv?: string,
): SigningKey {
  const block = pemBlock(text);
  if (!block) throw invalid(what, 'no PEM block');
  let privateKey: KeyObject;
  try {
    if (ENCRYPTED_TYPES.includes(block.type)) {
      const der = decrypt(block.der, password, what, passwordEnv);
      privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } else if (block.type === 'PRIVATE KEY' || block.type === 'EC PRIVATE KEY') {
      privateKey = createPrivateKey(text);
    } else throw invalid(what, `a ${block.type} is not a private key kiln can sign with`);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw invalid(what, e instanceof Error ? e.message : String(e));
  }
  if (privateKey.asymmetricKeyType !== 'ec')
    throw invalid(what, `a ${privateKey.asymmetricKeyType ?? 'unknown'} key; cosign keys are ECDSA (P-256)`);
  const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  return { privateKey, publicKeyPem };
}
