/**
 * kiln inspect's pure parts: statement summaries from documents written to the specs (SPDX root
 * package not counted, CycloneDX components, SLSA builder and dependencies; unreadable blobs
 * reported, not thrown) and the cosign signature check (key, wrong key, payload naming another
 * digest, keyless without a readable certificate).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { summarizeStatement } from '../../../src/inspect/statements.ts';
import { checkSignature } from '../../../src/inspect/signature-check.ts';
import { simpleSigningPayload } from '../../../src/sign/simple-signing.ts';

const D = `sha256:${'a'.repeat(64)}`;
const st = (predicateType: string, predicate: unknown): Buffer =>
  Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'pkg:docker/r/x@1', digest: { sha256: 'a'.repeat(64) } }],
      predicateType,
      predicate,
    }),
  );

describe('statement summaries', () => {
  test('SPDX: packages without the described root', () => {
    const s = summarizeStatement(
      D,
      '',
      st('https://spdx.dev/Document', {
        spdxVersion: 'SPDX-2.3',
        documentDescribes: ['SPDXRef-root'],
        creationInfo: { creators: ['Tool: x-1'] },
        packages: [{ SPDXID: 'SPDXRef-root' }, { SPDXID: 'SPDXRef-a' }, { SPDXID: 'SPDXRef-b' }],
      }),
    );
    assert.deepEqual(s.sbom, { format: 'spdx', version: 'SPDX-2.3', packages: 2, creator: 'Tool: x-1' });
    assert.deepEqual(s.subjects, [{ name: 'pkg:docker/r/x@1', digest: D }]);
  });

  test('CycloneDX: components', () => {
    const s = summarizeStatement(
      D,
      '',
      st('https://cyclonedx.org/bom', { specVersion: '1.6', components: [{}, {}, {}] }),
    );
    assert.equal(s.sbom?.format, 'cyclonedx');
    assert.equal(s.sbom?.packages, 3);
  });

  test('SLSA v1: builder, build type, dependencies with digests', () => {
    const s = summarizeStatement(
      D,
      '',
      st('https://slsa.dev/provenance/v1', {
        buildDefinition: {
          buildType: 'bt',
          resolvedDependencies: [{ uri: 'pkg:docker/debian', digest: { sha256: 'b'.repeat(64) } }],
        },
        runDetails: { builder: { id: 'https://ci/run/1' }, metadata: { invocationId: 'i1' } },
      }),
    );
    assert.deepEqual(s.provenance, {
      builderId: 'https://ci/run/1',
      buildType: 'bt',
      dependencies: [`pkg:docker/debian@sha256:${'b'.repeat(64)}`],
      invocationId: 'i1',
    });
  });

  test('a blob that is not JSON is reported with its error', () => {
    const s = summarizeStatement(D, 'https://spdx.dev/Document', Buffer.from('{nope'));
    assert.match(s.error ?? '', /not JSON/);
  });
});

describe('signature check', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  const payload = simpleSigningPayload('r/x', D);
  const ann = {
    'dev.cosignproject.cosign/signature': sign('sha256', payload, privateKey).toString('base64'),
  };

  test('verified with the key', () => {
    const s = checkSignature(D, 't', payload, ann, publicKey);
    assert.equal(s.status, 'key');
    assert.equal(s.dockerReference, 'r/x');
  });
  test('another key fails', () => {
    const s = checkSignature(D, 't', payload, ann, other);
    assert.equal(s.status, 'failed');
    assert.match(s.reason ?? '', /does not verify/);
  });
  test('a valid signature over a payload naming another digest fails', () => {
    const s = checkSignature(`sha256:${'c'.repeat(64)}`, 't', payload, ann, publicKey);
    assert.equal(s.status, 'failed');
    assert.equal(s.payloadMatches, false);
  });
  test('no key: key-based signatures are unchecked; a broken certificate fails', () => {
    assert.equal(checkSignature(D, 't', payload, ann, undefined).status, 'unchecked');
    const broken = {
      ...ann,
      'dev.sigstore.cosign/certificate': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    };
    const s = checkSignature(D, 't', payload, broken, undefined);
    assert.equal(s.keyless, true);
    assert.equal(s.status, 'failed');
  });
});
