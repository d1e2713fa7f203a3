import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildEnvironment, publicUrl } from '../../../src/attest/ci-env.ts';
import {
  buildProvenance,
  dependencyOf,
  KILN_BUILDER_ID,
  type ProvenanceInputs,
} from '../../../src/attest/provenance.ts';
import { imageSubject, statement, PredicateType } from '../../../src/attest/statement.ts';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

const GITHUB_ENV = {
  GITHUB_ACTIONS: 'true',
  GITHUB_SERVER_URL: 'https://github.com',
  GITHUB_REPOSITORY: 'octo/app',
  GITHUB_WORKFLOW_REF: 'octo/app/.github/workflows/build.yml@refs/heads/main',
  GITHUB_RUN_ID: '4242',
  GITHUB_RUN_ATTEMPT: '2',
  GITHUB_SHA: 'f'.repeat(40),
  GITHUB_REF: 'refs/heads/main',
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'secret-request-token',
};
const GITLAB_ENV = {
  GITLAB_CI: 'true',
  CI_PROJECT_URL: 'https://gitlab.example/group/app',
  CI_PIPELINE_URL: 'https://gitlab.example/group/app/-/pipelines/77',
  CI_JOB_URL: 'https://gitlab.example/group/app/-/jobs/99',
  CI_COMMIT_SHA: 'e'.repeat(40),
  CI_JOB_TOKEN: 'secret-job-token',
  SIGSTORE_ID_TOKEN: 'secret-oidc',
};

function inputs(over: Partial<ProvenanceInputs> = {}): ProvenanceInputs {
  return {
    mode: 'min',
    dockerfile: { path: 'Dockerfile', digest: D1, text: 'FROM debian\nRUN true\n' },
    target: 'app',
    buildArgs: { VERSION: '1.2' },
    labels: {},
    platform: 'linux/amd64',
    builderPlatform: 'linux/amd64',
    baseImages: [
      `docker.io/library/debian:bookworm@${D2}`,
      `127.0.0.1:5000/base/tools@${D1}`,
      `docker.io/library/debian:bookworm@${D2}`,
    ],
    env: {},
    steps: [{ stage: 'app', instruction: 'RUN true', line: 2 }],
    reproducible: false,
    startedOn: '2024-01-01T00:00:00.000Z',
    finishedOn: '2024-01-01T00:01:00.000Z',
    ...over,
  };
}

describe('CI environment', () => {
  test('GitHub: run URL as builder id, attempt in the invocation id, repository and sha as source', () => {
    const env = buildEnvironment(GITHUB_ENV);
    assert.equal(env.builderId, 'https://github.com/octo/app/actions/runs/4242');
    assert.equal(env.invocationId, 'https://github.com/octo/app/actions/runs/4242/attempts/2');
    assert.deepEqual(env.source, {
      uri: 'https://github.com/octo/app.git',
      commit: 'f'.repeat(40),
      ref: 'refs/heads/main',
    });
    assert.equal(env.ci?.github_workflow_ref, GITHUB_ENV.GITHUB_WORKFLOW_REF);
    assert.ok(!JSON.stringify(env).includes('secret'), 'no token copied');
  });
  test('GitLab: job URL as builder and invocation id, project and sha as source', () => {
    const env = buildEnvironment(GITLAB_ENV);
    assert.equal(env.builderId, GITLAB_ENV.CI_JOB_URL);
    assert.equal(env.invocationId, GITLAB_ENV.CI_JOB_URL);
    assert.deepEqual(env.source, { uri: 'https://gitlab.example/group/app.git', commit: 'e'.repeat(40) });
    assert.equal(env.ci?.gitlab_pipeline_url, GITLAB_ENV.CI_PIPELINE_URL);
    assert.ok(!JSON.stringify(env).includes('secret'));
  });
  test('outside CI: nothing; credentials never kept in URLs', () => {
    assert.deepEqual(buildEnvironment({ PATH: '/bin' }), {});
    assert.equal(publicUrl('https://oauth2:tok@gitlab.example/g/a'), 'https://gitlab.example/g/a');
  });
});

describe('SLSA v1 provenance', () => {
  test('min: parameters, pinned bases once each, builder and times; no Dockerfile text or steps', () => {
    const p = buildProvenance(inputs({ env: buildEnvironment(GITHUB_ENV) }));
    const ext = p.buildDefinition.externalParameters as {
      configSource: { uri: string; digest: { sha1: string }; path: string };
      request: { args: Record<string, string>; platform: string };
      dockerfile: { digest: { sha256: string }; content?: string };
    };
    assert.deepEqual(ext.configSource, {
      uri: 'https://github.com/octo/app.git',
      digest: { sha1: 'f'.repeat(40) },
      path: 'Dockerfile',
    });
    assert.deepEqual(ext.request.args, { 'build-arg:VERSION': '1.2', target: 'app' });
    assert.equal(ext.dockerfile.digest.sha256, '1'.repeat(64));
    assert.equal(ext.dockerfile.content, undefined);
    assert.deepEqual(p.buildDefinition.resolvedDependencies, [
      {
        uri: 'pkg:docker/docker.io/library/debian@bookworm?platform=linux%2Famd64',
        digest: { sha256: '2'.repeat(64) },
      },
      {
        uri: 'pkg:docker/127.0.0.1:5000/base/tools?platform=linux%2Famd64',
        digest: { sha256: '1'.repeat(64) },
      },
    ]);
    assert.equal(p.runDetails.builder.id, 'https://github.com/octo/app/actions/runs/4242');
    assert.equal(
      p.runDetails.metadata.invocationId,
      'https://github.com/octo/app/actions/runs/4242/attempts/2',
    );
    assert.equal(p.runDetails.metadata.startedOn, '2024-01-01T00:00:00.000Z');
    assert.equal(p.buildDefinition.internalParameters.buildConfig, undefined);
  });
  test('max: the Dockerfile itself and the step list', () => {
    const p = buildProvenance(inputs({ mode: 'max' }));
    const ext = p.buildDefinition.externalParameters as { dockerfile: { content: string } };
    assert.equal(Buffer.from(ext.dockerfile.content, 'base64').toString(), 'FROM debian\nRUN true\n');
    assert.deepEqual(p.buildDefinition.internalParameters.buildConfig, {
      steps: [{ stage: 'app', line: 2, instruction: 'RUN true' }],
    });
    assert.equal(p.runDetails.builder.id, KILN_BUILDER_ID);
  });
  test('reproducible: no times at all', () => {
    const p = buildProvenance(inputs({ reproducible: true, startedOn: undefined, finishedOn: undefined }));
    assert.deepEqual(p.runDetails.metadata, {});
    assert.ok(!/\d{4}-\d\d-\d\dT/.test(JSON.stringify(p)));
  });
  test('dependencyOf rejects unpinned references', () => {
    assert.equal(dependencyOf('docker.io/library/debian:bookworm', 'linux/amd64'), undefined);
  });
  test('statement v1 envelope with a BuildKit-style subject', () => {
    const s = statement(
      imageSubject('127.0.0.1:5000/app', '1', 'linux/amd64', D1),
      PredicateType.SlsaProvenanceV1,
      {},
    );
    assert.equal(s._type, 'https://in-toto.io/Statement/v1');
    assert.deepEqual(s.subject, [
      { name: 'pkg:docker/127.0.0.1:5000/app@1?platform=linux%2Famd64', digest: { sha256: '1'.repeat(64) } },
    ]);
  });
});
