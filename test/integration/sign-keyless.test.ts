/**
 * Keyless signing through the CLI, offline: the CI job's OIDC token (GitHub's token service served
 * on loopback, or GitLab's SIGSTORE_ID_TOKEN), a certificate from a loopback Fulcio and an entry
 * in a loopback Rekor (both @sigstore/mock's handlers, test/helpers/sigstore.ts), the signature
 * pushed to a real Distribution registry as cosign stores keyless signatures. Checked without
 * kiln's code: openssl extracts the certificate's key and verifies the signature over the stored
 * payload, the certificate chains to the mock CA and names the token's subject, the Rekor entry
 * hashes the payload and carries the same signature, its signed timestamp verifies with the log's
 * key. The OIDC token appears in no stored blob and no output.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { kiln, type CliResult } from '../helpers/cli.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startSigstore, type SigstoreStandIn } from '../helpers/sigstore.ts';
import type { Index, Manifest } from '../../src/image/types.ts';
import type { InspectReport } from '../../src/inspect/report.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json';

/** Variables a CI runner would set that must not leak into this test's build. */
const CLEAN_ENV = {
  SIGSTORE_ID_TOKEN: undefined,
  ACTIONS_ID_TOKEN_REQUEST_URL: undefined,
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined,
  GITHUB_ACTIONS: undefined,
  GITLAB_CI: undefined,
};

interface RekorBody {
  kind: string;
  spec: {
    data: { hash: { algorithm: string; value: string } };
    signature: { content: string; publicKey: { content: string } };
  };
}

describe(
  'keyless signatures (loopback Fulcio/Rekor)',
  { skip: !isRoot && 'needs root', timeout: 8 * 60_000 },
  () => {
    let reg: TestRegistry;
    let sigstore: SigstoreStandIn;
    let work: string;
    let ctx: string;
    const outputs: CliResult[] = [];

    before(async () => {
      reg = await startRegistry();
      sigstore = await startSigstore({ repository: 'acme/app', sha: 'd'.repeat(40) });
      await pushBusyboxImage(reg, 'base/busybox', '1');
      work = await mkdtemp(join(tmpdir(), 'kiln-keyless-'));
      await chmod(work, 0o755);
      ctx = join(work, 'ctx');
      await mkdir(ctx);
      await writeFile(join(ctx, 'Dockerfile'), `FROM ${reg.host}/base/busybox:1\nRUN echo keyless > /k\n`);
      await writeFile(join(work, 'root.pem'), sigstore.rootPem);
      await writeFile(join(work, 'rekor.pub'), sigstore.rekorPublicKeyPem);
    });
    after(async () => {
      await sigstore?.stop();
      await reg?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    async function build(repo: string, flags: string[], env: Record<string, string>): Promise<CliResult> {
      const r = await kiln(
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
          '--fulcio-url',
          sigstore.url,
          '--rekor-url',
          sigstore.url,
          ...flags,
        ],
        { ...CLEAN_ENV, ...env },
      );
      outputs.push(r);
      return r;
    }

    async function get(path: string): Promise<Response> {
      return fetch(`${reg.url}/v2/${path}`, { headers: { accept: ACCEPT } });
    }

    async function openssl(args: string[]): Promise<string> {
      return (await execFileP('openssl', args)).stdout;
    }

    /** Everything about `<repo>:sha256-<hex>.sig` checked with openssl; returns the signed digest. */
    async function verifyKeyless(repo: string, digest: string): Promise<string> {
      const r = await get(`${repo}/manifests/${digest.replace(':', '-')}.sig`);
      assert.equal(r.status, 200, `signature tag for ${digest}`);
      const layer = ((await r.json()) as Manifest).layers[0]!;
      assert.equal(layer.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
      const ann = layer.annotations!;
      const payload = Buffer.from(await (await get(`${repo}/blobs/${layer.digest}`)).arrayBuffer());
      const dir = await mkdtemp(join(work, 'v-'));
      const f = (n: string) => join(dir, n);
      await writeFile(f('payload'), payload);
      await writeFile(f('sig'), Buffer.from(ann['dev.cosignproject.cosign/signature']!, 'base64'));
      await writeFile(f('cert.pem'), ann['dev.sigstore.cosign/certificate']!);
      // The signature verifies with the certificate's key.
      await writeFile(f('pub.pem'), await openssl(['x509', '-in', f('cert.pem'), '-pubkey', '-noout']));
      const verified = await openssl([
        'dgst',
        '-sha256',
        '-verify',
        f('pub.pem'),
        '-signature',
        f('sig'),
        f('payload'),
      ]);
      assert.match(verified, /Verified OK/);
      // The certificate is the CA's, for the token's identity, for code signing.
      assert.match(
        await openssl(['verify', '-CAfile', join(work, 'root.pem'), '-purpose', 'any', f('cert.pem')]),
        /OK/,
      );
      const text = await openssl(['x509', '-in', f('cert.pem'), '-noout', '-text']);
      assert.ok(text.includes(`URI:${sigstore.subject}`), 'the SAN is the token subject');
      assert.match(text, /Code Signing/);
      // The Rekor bundle: a hashedrekord of this payload with this signature, timestamp signed by the log.
      const bundle = JSON.parse(ann['dev.sigstore.cosign/bundle']!) as {
        SignedEntryTimestamp: string;
        Payload: { body: string; integratedTime: number; logIndex: number; logID: string };
      };
      const body = JSON.parse(Buffer.from(bundle.Payload.body, 'base64').toString()) as RekorBody;
      assert.equal(body.kind, 'hashedrekord');
      assert.equal(body.spec.data.hash.value, createHash('sha256').update(payload).digest('hex'));
      assert.equal(body.spec.signature.content, ann['dev.cosignproject.cosign/signature']);
      const der = (pem: string) => pem.replace(/-----[A-Z ]+-----|\s/g, '');
      assert.equal(
        der(Buffer.from(body.spec.signature.publicKey.content, 'base64').toString()),
        der(ann['dev.sigstore.cosign/certificate']!),
        'the entry names the same certificate',
      );
      // cosign's SET: the log's signature over the canonical JSON of the payload (keys sorted).
      const p = bundle.Payload;
      const canonical = JSON.stringify({
        body: p.body,
        integratedTime: p.integratedTime,
        logID: p.logID,
        logIndex: p.logIndex,
      });
      await writeFile(f('set-payload'), canonical);
      await writeFile(f('set'), Buffer.from(bundle.SignedEntryTimestamp, 'base64'));
      assert.match(
        await openssl([
          'dgst',
          '-sha256',
          '-verify',
          join(work, 'rekor.pub'),
          '-signature',
          f('set'),
          f('set-payload'),
        ]),
        /Verified OK/,
      );
      const doc = JSON.parse(payload.toString()) as {
        critical: { identity: { 'docker-reference': string }; image: { 'docker-manifest-digest': string } };
      };
      assert.equal(doc.critical.identity['docker-reference'], `${reg.host}/${repo}`);
      return doc.critical.image['docker-manifest-digest'];
    }

    test('GitHub: token from the Actions token service; index, image and attestation manifest signed', async () => {
      const r = await build(
        'k/gh',
        ['--attestation', 'max', '--sign', '--result-file', join(work, 'gh.json')],
        {
          ACTIONS_ID_TOKEN_REQUEST_URL: `${sigstore.url}/token?api-version=2.0`,
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: sigstore.requestToken,
        },
      );
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      const digest = r.stdout.trim();
      const index = (await (await get('k/gh/manifests/1')).json()) as Index;
      const subjects = [digest, index.manifests[0]!.digest, index.manifests[1]!.digest];
      for (const d of subjects) assert.equal(await verifyKeyless('k/gh', d), d);
      assert.ok(sigstore.tokenRequests.length >= 2, 'asked before the build and for the signing');
      assert.ok(
        sigstore.tokenRequests.every((a) => a === 'sigstore'),
        'for the audience sigstore',
      );
      const result = JSON.parse(await readFile(join(work, 'gh.json'), 'utf8')) as {
        signatures: Array<{ subject: string; keyless: boolean }>;
      };
      assert.deepEqual(
        result.signatures.map((s) => [s.subject, s.keyless]),
        subjects.map((s) => [s, true]),
      );
    });

    test('kiln inspect reports the keyless identity, issuer and Rekor entry of each signature', async () => {
      const r = await kiln([
        'inspect',
        `${reg.host}/k/gh:1`,
        '--insecure-registry',
        reg.host,
        '--format',
        'json',
      ]);
      outputs.push(r);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      const report = JSON.parse(r.stdout) as InspectReport;
      assert.equal(report.signatures.length, 3);
      for (const s of report.signatures) {
        assert.equal(s.status, 'certificate');
        assert.equal(s.keyless, true);
        assert.equal(s.identity, sigstore.subject);
        assert.equal(s.issuer, sigstore.issuer);
        assert.equal(typeof s.rekorLogIndex, 'number');
      }
      const text = await kiln(['inspect', `${reg.host}/k/gh:1`, '--insecure-registry', reg.host]);
      outputs.push(text);
      assert.match(text.stdout, new RegExp(`keyless, identity ${sigstore.subject.replace(/[.]/g, '\\.')}`));
    });

    test('GitLab: SIGSTORE_ID_TOKEN as is; the image manifest signed', async () => {
      const before = sigstore.fulcioRequests;
      const r = await build('k/gl', ['--sign'], { SIGSTORE_ID_TOKEN: sigstore.idToken, GITLAB_CI: 'true' });
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      const digest = r.stdout.trim();
      assert.equal(await verifyKeyless('k/gl', digest), digest);
      assert.equal(sigstore.fulcioRequests, before + 1);
    });

    test('a refused token request: a clear error naming the permission before the build, nothing pushed', async () => {
      const r = await build('k/denied', ['--sign'], {
        ACTIONS_ID_TOKEN_REQUEST_URL: `${sigstore.url}/token`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'not-the-request-token',
      });
      assert.notEqual(r.code, 0);
      assert.notEqual(r.code, 70, 'not an internal error');
      assert.match(r.stderr, /HTTP 401/);
      assert.match(r.stderr, /id-token: write/);
      assert.equal((await get('k/denied/tags/list')).status, 404, 'the repository does not exist');
    });

    test('the OIDC token and the request token are in no stored blob and no output', async () => {
      const secrets = [sigstore.idToken, sigstore.requestToken, sigstore.idToken.split('.')[2]!];
      let files = 0;
      for (const e of await readdir(reg.rootDir, { recursive: true, withFileTypes: true })) {
        if (!e.isFile()) continue;
        const path = join(e.parentPath, e.name);
        const b = await readFile(path);
        files++;
        const texts = [b, ...(b[0] === 0x1f && b[1] === 0x8b ? [gunzipSync(b)] : [])];
        for (const t of texts) for (const s of secrets) assert.ok(!t.includes(s), path);
      }
      assert.ok(files > 10, `the registry holds the pushed blobs (${files} files)`);
      assert.ok(outputs.length >= 5);
      for (const o of outputs) for (const s of secrets) assert.ok(!(o.stdout + o.stderr).includes(s));
    });
  },
);
