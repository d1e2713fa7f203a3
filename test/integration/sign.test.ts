/**
 * Key-based signatures through the CLI and a real Distribution registry, verified without kiln's
 * code: the `.sig` manifest's payload and signature annotation checked by `openssl dgst -verify`,
 * the payload naming the pushed digest. Keys: an encrypted cosign key (the scrypt + NaCl secretbox
 * JSON `cosign generate-key-pair` writes, made here with Node's scrypt and @noble/ciphers) and a
 * plain PKCS#8 key from openssl. A wrong password is exit 2 with nothing pushed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, scryptSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { secretbox } from '@noble/ciphers/salsa.js';
import { kiln } from '../helpers/cli.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { opensslP256 } from '../helpers/openssl-key.ts';
import type { Index, Manifest } from '../../src/image/types.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const PASSWORD = 'sign-key-password-Wq7';

const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json';

async function get(reg: TestRegistry, path: string): Promise<Response> {
  return fetch(`${reg.url}/v2/${path}`, { headers: { accept: ACCEPT } });
}

/** cosign's encrypted key PEM: JSON {kdf: scrypt, cipher: nacl/secretbox, ciphertext} over PKCS#8 DER. */
function cosignEncryptedKey(pkcs8Der: Buffer, password: string): string {
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const N = 32768;
  const key = scryptSync(password, salt, 32, { N, r: 8, p: 1, maxmem: 64 << 20 });
  const ct = secretbox(new Uint8Array(key), new Uint8Array(nonce)).seal(new Uint8Array(pkcs8Der));
  const json = JSON.stringify({
    kdf: { name: 'scrypt', params: { N, r: 8, p: 1 }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ct).toString('base64'),
  });
  const b64 = Buffer.from(json)
    .toString('base64')
    .replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${b64}-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
}

describe('cosign-format signatures', { skip: !isRoot && 'needs root', timeout: 5 * 60_000 }, () => {
  let reg: TestRegistry;
  let work: string;
  let ctx: string;
  let pubPem: string;

  before(async () => {
    reg = await startRegistry();
    await pushBusyboxImage(reg, 'base/busybox', '1');
    work = await mkdtemp(join(tmpdir(), 'kiln-sign-'));
    await chmod(work, 0o755);
    ctx = join(work, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${reg.host}/base/busybox:1\nRUN echo signed > /s\n`);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await writeFile(join(work, 'pub.pem'), pubPem);
    const der = privateKey.export({ type: 'pkcs8', format: 'der' });
    await writeFile(join(work, 'cosign.key'), cosignEncryptedKey(der, PASSWORD));
    // A plain PKCS#8 key, written by openssl itself.
    await opensslP256(work, 'plain');
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const build = (repo: string, flags: string[], env: Record<string, string> = {}) =>
    kiln(
      [
        'build',
        '--context',
        ctx,
        '--destination',
        `${reg.host}/${repo}:1`,
        '--insecure-registry',
        reg.host,
        '--work-dir',
        join(work, 'kw'),
        ...flags,
      ],
      env,
    );

  /** Verifies `<repo>:sha256-<hex>.sig` with openssl; returns the payload's manifest digest. */
  async function verifyWithOpenssl(repo: string, digest: string, pub: string): Promise<string> {
    const r = await get(reg, `${repo}/manifests/${digest.replace(':', '-')}.sig`);
    assert.equal(r.status, 200, `signature tag for ${digest}`);
    const m = (await r.json()) as Manifest;
    const layer = m.layers[0]!;
    assert.equal(layer.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    const payload = Buffer.from(await (await get(reg, `${repo}/blobs/${layer.digest}`)).arrayBuffer());
    const sig = Buffer.from(layer.annotations!['dev.cosignproject.cosign/signature']!, 'base64');
    const dir = await mkdtemp(join(work, 'v-'));
    await writeFile(join(dir, 'payload'), payload);
    await writeFile(join(dir, 'sig'), sig);
    const { stdout } = await execFileP('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      pub,
      '-signature',
      join(dir, 'sig'),
      join(dir, 'payload'),
    ]);
    assert.match(stdout, /Verified OK/);
    const doc = JSON.parse(payload.toString()) as {
      critical: {
        identity: { 'docker-reference': string };
        image: { 'docker-manifest-digest': string };
        type: string;
      };
    };
    assert.equal(doc.critical.type, 'cosign container image signature');
    assert.equal(doc.critical.identity['docker-reference'], `${reg.host}/${repo}`);
    return doc.critical.image['docker-manifest-digest'];
  }

  test('encrypted cosign key: index, image and attestation manifest signed; openssl verifies each', async () => {
    const r = await build(
      's/enc',
      [
        '--attestation',
        'min',
        '--sign',
        '--cosign-key',
        join(work, 'cosign.key'),
        '--cosign-password-env',
        'KEY_PW',
        '--result-file',
        join(work, 'result.json'),
      ],
      {
        KEY_PW: PASSWORD,
      },
    );
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const digest = r.stdout.trim();
    const index = (await (await get(reg, 's/enc/manifests/1')).json()) as Index;
    const subjects = [digest, index.manifests[0]!.digest, index.manifests[1]!.digest];
    for (const d of subjects) assert.equal(await verifyWithOpenssl('s/enc', d, join(work, 'pub.pem')), d);
    const result = JSON.parse(await readFile(join(work, 'result.json'), 'utf8')) as {
      signatures: Array<{ subject: string }>;
    };
    assert.deepEqual(
      result.signatures.map((s) => s.subject),
      subjects,
    );
    assert.ok(!r.stderr.includes(PASSWORD));
    // The password is in no stored file (blobs are searched raw and gunzipped).
    for (const e of await readdir(reg.rootDir, { recursive: true, withFileTypes: true })) {
      if (!e.isFile()) continue;
      const f = join(e.parentPath, e.name);
      const b = await readFile(f);
      assert.ok(!b.includes(PASSWORD), f);
      if (b[0] === 0x1f && b[1] === 0x8b) assert.ok(!gunzipSync(b).includes(PASSWORD), f);
    }
  });

  test('plain PKCS#8 key from openssl: the single image manifest signed', async () => {
    const r = await build('s/plain', ['--sign', '--cosign-key', join(work, 'plain.pem')]);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const digest = r.stdout.trim();
    assert.equal(await verifyWithOpenssl('s/plain', digest, join(work, 'plain.pub')), digest);
    const m = (await (await get(reg, 's/plain/manifests/1')).json()) as Manifest;
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  });

  test('wrong password: exit 2, a clear message, nothing pushed', async () => {
    const r = await build(
      's/wrong',
      ['--sign', '--cosign-key', join(work, 'cosign.key'), '--cosign-password-env', 'KEY_PW'],
      {
        KEY_PW: 'not-the-password',
      },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /wrong password/);
    assert.ok(!r.stderr.includes('not-the-password'));
    const tags = await get(reg, 's/wrong/tags/list');
    assert.equal(tags.status, 404, 'the repository does not exist');
  });
});
