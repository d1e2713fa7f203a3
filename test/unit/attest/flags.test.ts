/** The supply-chain flags through commander and toBuildOptions, as `kiln build` parses them. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { addBuildFlags, toBuildOptions } from '../../../src/cli/build-flags.ts';
import { checkSupplyChainOptions } from '../../../src/supply-chain.ts';
import type { BuildOptions } from '../../../src/options.ts';

function parse(args: string[], env: NodeJS.ProcessEnv = {}): BuildOptions {
  const cmd = addBuildFlags(new Command(), {})
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  cmd.parse(args, { from: 'user' });
  return toBuildOptions(cmd.opts(), env);
}
const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};

describe('attestation flags', () => {
  test('default: none; --attestation min/max: SBOM (SPDX) and provenance of that mode', () => {
    const d = parse([]);
    assert.equal(d.attest.sbom, undefined);
    assert.equal(d.attest.provenance, undefined);
    assert.deepEqual(parse(['--attestation', 'min']).attest.provenance, { mode: 'min', attach: true });
    const max = parse(['--attestation', 'max']).attest;
    assert.deepEqual(
      [max.sbom, max.provenance],
      [
        { format: 'spdx', attach: true },
        { mode: 'max', attach: true },
      ],
    );
    assert.equal(parse(['--attestation', 'off']).attest.sbom, undefined);
  });
  test('--attest adds or refines one attestation; disabled=true removes it', () => {
    const a = parse(['--attest', 'type=sbom,format=cyclonedx']).attest;
    assert.deepEqual([a.sbom, a.provenance], [{ format: 'cyclonedx', attach: true }, undefined]);
    const b = parse([
      '--attestation',
      'max',
      '--attest',
      'type=provenance,mode=min',
      '--attest',
      'type=sbom,disabled=true',
    ]).attest;
    assert.deepEqual([b.sbom, b.provenance], [undefined, { mode: 'min', attach: true }]);
    assert.deepEqual(parse(['--attest', 'type=sbom,generator=kiln']).attest.sbom, {
      format: 'spdx',
      attach: true,
    });
    // A file alone: generated for it, not pushed.
    assert.deepEqual(parse(['--sbom-output', 's.json']).attest.sbom, { format: 'spdx', attach: false });
  });
  test('what kiln cannot do is an error, never ignored', () => {
    assert.equal(
      code(() => parse(['--attest', 'type=sbom,generator=docker/buildkit-syft-scanner'])),
      'BAD_ATTEST',
    );
    assert.equal(
      code(() => parse(['--attest', 'type=provenance,version=v0.2'])),
      'BAD_ATTEST',
    );
    assert.equal(
      code(() => parse(['--attest', 'type=vex'])),
      'BAD_ATTEST',
    );
    assert.equal(
      code(() => parse(['--attest', 'type=provenance,mode=full'])),
      'BAD_ATTEST',
    );
    assert.throws(() => parse(['--attestation', 'all']));
  });
  test('the CI environment is read for the provenance', () => {
    const o = parse(['--attestation', 'min'], {
      GITLAB_CI: 'true',
      CI_PROJECT_URL: 'https://gl.example/g/p',
      CI_JOB_URL: 'https://gl.example/g/p/-/jobs/1',
    });
    assert.equal(o.attest.environment.builderId, 'https://gl.example/g/p/-/jobs/1');
  });
});

describe('signing flags', () => {
  test('--sign --cosign-key with the password from the named variable', () => {
    const o = parse(['--sign', '--cosign-key', 'k.key', '--cosign-password-env', 'PW'], { PW: 'pw' });
    assert.equal(o.sign.enabled, true);
    assert.equal(o.sign.key, 'k.key');
    assert.equal(o.sign.password, 'pw');
  });
  test('keyless takes GitHub or GitLab tokens; without any the build refuses to start', () => {
    const gh = parse(['--sign'], {
      ACTIONS_ID_TOKEN_REQUEST_URL: 'https://t.example/x',
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'r',
    });
    assert.deepEqual(gh.sign.tokenRequest, { url: 'https://t.example/x', token: 'r' });
    assert.equal(parse(['--sign'], { SIGSTORE_ID_TOKEN: 'jwt' }).sign.idToken, 'jwt');
    assert.equal(
      code(() => checkSupplyChainOptions(parse(['--sign']))),
      'SIGN_NO_IDENTITY',
    );
  });
  test('key flags without --sign are refused at the start', () => {
    assert.equal(
      code(() => checkSupplyChainOptions(parse(['--cosign-key', 'k.key']))),
      'BAD_ATTEST',
    );
    assert.equal(parse(['--sign=false']).sign.enabled, false);
  });
  test('attestations with --format docker are refused', () => {
    assert.equal(
      code(() => checkSupplyChainOptions(parse(['--attestation', 'min', '--format', 'docker']))),
      'FORMAT_UNSUPPORTED',
    );
    assert.equal(
      code(() => checkSupplyChainOptions(parse(['--sbom-output', 'f', '--format', 'docker']))),
      undefined,
    );
  });
});
