import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, scryptSync } from 'node:crypto';
import { secretbox } from '@noble/ciphers/salsa.js';
import { loadSigningKey } from '../../../src/sign/cosign-key.ts';
import { signatureImage, signatureTag, simpleSigningPayload } from '../../../src/sign/simple-signing.ts';

function encrypted(der: Buffer, password: string, type = 'ENCRYPTED SIGSTORE PRIVATE KEY'): string {
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const key = scryptSync(password, salt, 32, { N: 1024, r: 8, p: 1 });
  const ct = secretbox(new Uint8Array(key), new Uint8Array(nonce)).seal(new Uint8Array(der));
  const json = JSON.stringify({
    kdf: { name: 'scrypt', params: { N: 1024, r: 8, p: 1 }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ct).toString('base64'),
  });
  return `-----BEGIN ${type}-----\n${Buffer.from(json).toString('base64')}\n-----END ${type}-----\n`;
}

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const der = ec.privateKey.export({ type: 'pkcs8', format: 'der' });
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};

test('encrypted cosign keys (both PEM types) decrypt to the key; wrong or missing password is a usage error', () => {
  for (const type of ['ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY']) {
    const k = loadSigningKey(encrypted(der, 'pw', type), 'pw', 'k');
    assert.equal(k.publicKeyPem, ec.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  }
  assert.equal(
    codeOf(() => loadSigningKey(encrypted(der, 'pw'), 'nope', 'k')),
    'SIGN_KEY_PASSWORD',
  );
  assert.equal(
    codeOf(() => loadSigningKey(encrypted(der, 'pw'), undefined, 'k')),
    'SIGN_KEY_PASSWORD',
  );
});

test('plain PKCS#8 EC keys load; RSA keys and garbage are refused', () => {
  const pem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.ok(loadSigningKey(pem, undefined, 'k').publicKeyPem.includes('PUBLIC KEY'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
  assert.equal(
    codeOf(() => loadSigningKey(rsa, undefined, 'k')),
    'SIGN_KEY_INVALID',
  );
  assert.equal(
    codeOf(() => loadSigningKey('hello', undefined, 'k')),
    'SIGN_KEY_INVALID',
  );
});

test('simple-signing payload and .sig manifest as cosign stores them', () => {
  const d = `sha256:${'ab'.repeat(32)}`;
  const payload = simpleSigningPayload('r.example/app', d);
  assert.deepEqual(JSON.parse(payload.toString()), {
    critical: {
      identity: { 'docker-reference': 'r.example/app' },
      image: { 'docker-manifest-digest': d },
      type: 'cosign container image signature',
    },
    optional: null,
  });
  assert.equal(signatureTag(d), `sha256-${'ab'.repeat(32)}.sig`);
  const { image, blobs } = signatureImage(payload, { 'dev.cosignproject.cosign/signature': 'c2ln' });
  assert.equal(image.manifest.layers[0]!.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
  assert.deepEqual(blobs.get(image.manifest.layers[0]!.digest), payload);
});
