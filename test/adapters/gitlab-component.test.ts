/**
 * The GitLab CI/CD component: its `spec:inputs` header and the job interpolated with a small
 * `$[[ inputs.x ]]` interpolator (GitLab's rules: typed defaults, options, regex, whole-value
 * interpolation keeps the type), both validated with ajv against GitLab's CI schema (draft-07, a copy
 * in fixtures/); the job script's pieces (default tags, OCI metadata, registry logins). Whole
 * pipelines run by gitlab-ci-local are in gitlab-pipelines.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  dotenv,
  gitlabInputs,
  jobPrefix,
  metadataArgs,
  TEMPLATE_VARIABLES,
} from '../../src/ci/gitlab/main.ts';
import type { BuildResult } from '../../src/result.ts';
import { destinations } from '../../src/ci/gitlab/tags.ts';
import { jobLogins } from '../../src/ci/gitlab/auth.ts';
import { ciMetadata } from '../../src/ci/gitlab/metadata.ts';
import { interpolate, loadTemplate, schemaErrors, TEMPLATE } from './fixtures/gitlab-template.ts';

describe('GitLab component template', () => {
  const { header, body } = loadTemplate();
  const spec = header.spec.inputs;

  test('the spec header is valid GitLab CI', () => assert.equal(schemaErrors(header), ''));

  test('the job sets exactly the variables the job script reads', () => {
    const job = interpolate(spec, body, {}) as Record<string, { variables: Record<string, unknown> }>;
    assert.deepEqual(Object.keys(job['kiln-build']!.variables).sort(), [...TEMPLATE_VARIABLES].sort());
  });

  test('every input has a description and a default; kiln-build reads each one', () => {
    const text = readFileSync(TEMPLATE, 'utf8');
    for (const [name, s] of Object.entries(spec)) {
      assert.ok(s.description, `${name} has a description`);
      assert.notEqual(s.default, undefined, `${name} has a default`);
      assert.ok(text.includes(`$[[ inputs.${name} ]]`), `${name} is used`);
    }
  });

  const good: [string, Record<string, unknown>][] = [
    ['defaults', {}],
    [
      'everything set',
      {
        'job-name': 'build api',
        stage: 'package',
        image: 'registry.example.com/kiln:1',
        context: 'app',
        dockerfile: 'app/Dockerfile',
        destinations: 'r.example/a:1 r.example/a:2',
        repository: 'r.example/a',
        'tag-commit-sha': false,
        'tag-commit-tag': false,
        'tag-latest': false,
        'tag-ref-slug': true,
        'oci-labels': false,
        'build-args': 'A=1\nB=2',
        target: 'prod',
        labels: 'x=y',
        push: false,
        platform: 'linux/arm64/v8',
        platforms: 'linux/amd64,linux/arm/v7',
        isolation: 'rootless',
        cache: false,
        'cache-key': 'k',
        'cache-dir': '.c',
        'cache-repo': 'r.example/a/cache',
        reproducible: true,
        'insecure-registries': '127.0.0.1:5000',
        'extra-args': '--verbosity debug',
      },
    ],
  ];
  for (const [name, given] of good) {
    test(`interpolated job is valid GitLab CI: ${name}`, () => {
      const job = interpolate(spec, body, given) as Record<string, Record<string, unknown>>;
      assert.equal(schemaErrors(job), '');
      const name = (given['job-name'] as string | undefined) ?? 'kiln-build';
      assert.deepEqual(Object.keys(job), [name], 'one job, named by the job-name input');
      const k = job[name]!;
      assert.equal((k.image as { name: string }).name, given.image ?? spec.image!.default);
      assert.deepEqual((k.artifacts as { reports: unknown }).reports, { dotenv: 'kiln.env' });
      const vars = k.variables as Record<string, unknown>;
      assert.equal(vars.KILN_PUSH, given.push ?? true);
      assert.equal(vars.KILN_BUILD_ARGS, given['build-args'] ?? '');
    });
  }

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['isolation outside options', { isolation: 'docker' }, /not in the list of allowed options/],
    ['platform not os/arch', { platform: 'amd64' }, /RegEx/],
    ['platforms with one not os/arch', { platforms: 'linux/amd64,arm64' }, /RegEx/],
    ['push not a boolean', { push: 'yes' }, /not a boolean/],
    ['unknown input', { tags: 'x' }, /unknown input: tags/],
    ['a job name that is not a job name', { 'job-name': '.hidden' }, /RegEx/],
    ['tag-latest not a boolean', { 'tag-latest': 'no' }, /not a boolean/],
  ];
  for (const [name, given, re] of bad) {
    test(`interpolation rejects ${name}`, () => assert.throws(() => interpolate(spec, body, given), re));
  }

  test('the schema catches a broken job (the validation is real)', () => {
    const job = interpolate(spec, body, {}) as Record<string, Record<string, unknown>>;
    const broken = { ...job, 'kiln-build': { ...job['kiln-build'], artifacts: { reports: { dotenv: 5 } } } };
    assert.notEqual(schemaErrors(broken), '');
    assert.notEqual(schemaErrors({ 'kiln-build': { ...job['kiln-build'], when: 'sometimes' } }), '');
  });
});

describe('GitLab job script pieces', () => {
  const CI = {
    CI_REGISTRY_IMAGE: 'reg/g/p',
    CI_COMMIT_SHORT_SHA: 'abc12345',
    CI_COMMIT_REF_SLUG: 'feature-x',
    CI_DEFAULT_BRANCH: 'main',
  };
  const dest: [string, NodeJS.ProcessEnv, string[]][] = [
    [
      'given, split on spaces, commas and newlines',
      { ...CI, KILN_DESTINATIONS: 'a/b:1 a/b:2,a/b:3\na/b:4' },
      ['a/b:1', 'a/b:2', 'a/b:3', 'a/b:4'],
    ],
    ['feature branch: the sha only', { ...CI, CI_COMMIT_BRANCH: 'feature/x' }, ['reg/g/p:abc12345']],
    [
      'default branch: sha and latest',
      { ...CI, CI_COMMIT_BRANCH: 'main', CI_COMMIT_REF_SLUG: 'main' },
      ['reg/g/p:abc12345', 'reg/g/p:latest'],
    ],
    [
      'tag pipeline: sha and the tag, no latest',
      { ...CI, CI_COMMIT_TAG: 'v1.2.0', CI_COMMIT_REF_SLUG: 'v1-2-0' },
      ['reg/g/p:abc12345', 'reg/g/p:v1.2.0'],
    ],
    [
      'ref slug on, sha and latest off, own repository',
      {
        ...CI,
        CI_COMMIT_BRANCH: 'main',
        CI_COMMIT_REF_SLUG: 'main',
        KILN_REPOSITORY: 'reg/g/p/api',
        KILN_TAG_REF_SLUG: 'true',
        KILN_TAG_COMMIT_SHA: 'false',
        KILN_TAG_LATEST: 'false',
      },
      ['reg/g/p/api:main'],
    ],
    [
      'tag off on a tag pipeline',
      { ...CI, CI_COMMIT_TAG: 'v1', KILN_TAG_COMMIT_TAG: 'false' },
      ['reg/g/p:abc12345'],
    ],
    ['no registry', {}, []],
  ];
  for (const [name, env, want] of dest) {
    test(`destinations: ${name}`, () => assert.deepEqual(destinations(env), want));
  }
  test('destinations: a repository with a tag, or a bad boolean, is a usage error naming the input', () => {
    assert.throws(() => destinations({ ...CI, KILN_REPOSITORY: 'reg/g/p:v1' }), /input repository/);
    assert.throws(() => destinations({ ...CI, KILN_TAG_LATEST: 'yes' }), /input tag-latest/);
    assert.deepEqual(destinations({ ...CI, KILN_REPOSITORY: '127.0.0.1:5000/g/p' }), [
      '127.0.0.1:5000/g/p:abc12345',
    ]);
  });

  test('template variables parse through the typed inputs', () => {
    const i = gitlabInputs({
      KILN_CONTEXT: 'app',
      KILN_DOCKERFILE: 'app/D',
      CI_REGISTRY_IMAGE: 'reg/g/p',
      CI_COMMIT_SHORT_SHA: 'abc',
      KILN_PUSH: 'true',
      KILN_CACHE: 'false',
      KILN_PLATFORM: 'linux/amd64',
      KILN_BUILD_ARGS: 'A=1\nB=2',
    });
    assert.equal(i.file, 'app/D');
    assert.deepEqual(i.tags, ['reg/g/p:abc']);
    assert.deepEqual(i.buildArgs, ['A=1', 'B=2']);
    assert.equal(i.cache, false);
    assert.deepEqual(i.platforms, ['linux/amd64']);
    assert.deepEqual(
      gitlabInputs({ KILN_DESTINATIONS: 'a/b:1', KILN_PLATFORMS: 'linux/amd64,linux/arm64' }).platforms,
      ['linux/amd64', 'linux/arm64'],
    );
    assert.throws(
      () => gitlabInputs({ KILN_DESTINATIONS: 'a/b:1', KILN_PLATFORMS: 'linux/amd64,arm64' }),
      /input platforms "arm64" is not os\/arch/,
    );
    assert.throws(
      () => gitlabInputs({ KILN_DESTINATIONS: 'a/b:1', KILN_BUILD_ARGS: 'oops' }),
      /not KEY=VALUE/,
    );
  });

  const PROJECT = {
    CI_PROJECT_NAME: 'shop',
    CI_PROJECT_DESCRIPTION: 'The shop\nsecond line',
    CI_PROJECT_URL: 'https://gitlab.example.com/g/shop',
    CI_COMMIT_SHA: 'f'.repeat(40),
    CI_COMMIT_REF_SLUG: 'main',
    CI_COMMIT_TIMESTAMP: '2026-01-02T03:04:05+00:00',
  };
  test('OCI metadata from CI variables: metadata-action keys, commit time when reproducible', () => {
    const now = new Date('2026-02-03T04:05:06.000Z');
    const oci = 'org.opencontainers.image';
    assert.deepEqual(ciMetadata(PROJECT, { reproducible: false, now }), [
      `${oci}.title=shop`,
      `${oci}.description=The shop`,
      `${oci}.url=https://gitlab.example.com/g/shop`,
      `${oci}.source=https://gitlab.example.com/g/shop`,
      `${oci}.version=main`,
      `${oci}.created=2026-02-03T04:05:06.000Z`,
      `${oci}.revision=${'f'.repeat(40)}`,
    ]);
    const tagged = ciMetadata({ ...PROJECT, CI_COMMIT_TAG: 'v2.0.0' }, { reproducible: true });
    assert.ok(tagged.includes(`${oci}.version=v2.0.0`));
    assert.ok(tagged.includes(`${oci}.created=2026-01-02T03:04:05+00:00`));
    assert.deepEqual(ciMetadata({}, { reproducible: true }), []);
  });

  test('OCI metadata argv: labels and annotations before the user labels, off with oci-labels false', () => {
    const args = metadataArgs(PROJECT, false);
    assert.ok(args.includes('--label') && args.includes('--annotation'));
    assert.equal(args.filter((a) => a === '--label').length, args.filter((a) => a === '--annotation').length);
    assert.deepEqual(metadataArgs({ ...PROJECT, KILN_OCI_LABELS: 'false' }, false), []);
    assert.throws(() => metadataArgs({ ...PROJECT, KILN_OCI_LABELS: 'nope' }, false), /input oci-labels/);
  });

  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const TOKENS = {
    CI_REGISTRY: 'registry.example.com',
    CI_REGISTRY_USER: 'gitlab-ci-token',
    CI_REGISTRY_PASSWORD: 'job-token',
    CI_DEPENDENCY_PROXY_SERVER: 'gitlab.example.com:443',
    CI_DEPENDENCY_PROXY_USER: 'gitlab-ci-token',
    CI_DEPENDENCY_PROXY_PASSWORD: 'proxy-token',
  };
  test('logins: DOCKER_AUTH_CONFIG, then the runner config, then the job tokens; earlier wins', () => {
    const env = {
      ...TOKENS,
      DOCKER_AUTH_CONFIG: JSON.stringify({
        auths: { 'quay.io': { auth: b64('q:1') }, 'registry.example.com': { auth: b64('mine:2') } },
        credHelpers: { '123.dkr.ecr.eu-west-1.amazonaws.com': 'ecr-login' },
      }),
    };
    const got = jobLogins(env, {
      auths: { 'ghcr.io': { auth: b64('g:3') }, 'quay.io': { auth: b64('x:x') } },
      credsStore: 'pass',
    });
    assert.deepEqual(got?.config, {
      credsStore: 'pass',
      auths: {
        'quay.io': { auth: b64('q:1') },
        'registry.example.com': { auth: b64('mine:2') },
        'ghcr.io': { auth: b64('g:3') },
        'gitlab.example.com:443': { auth: b64('gitlab-ci-token:proxy-token') },
        'gitlab.example.com': { auth: b64('gitlab-ci-token:proxy-token') },
      },
      credHelpers: { '123.dkr.ecr.eu-west-1.amazonaws.com': 'ecr-login' },
    });
    assert.deepEqual(got?.hosts, {
      'quay.io': 'DOCKER_AUTH_CONFIG',
      'registry.example.com': 'DOCKER_AUTH_CONFIG',
      '123.dkr.ecr.eu-west-1.amazonaws.com': 'DOCKER_AUTH_CONFIG (credential helper ecr-login)',
      'ghcr.io': 'Docker config',
      'gitlab.example.com:443': 'CI_DEPENDENCY_PROXY_USER',
      'gitlab.example.com': 'CI_DEPENDENCY_PROXY_USER',
    });
    assert.ok(!JSON.stringify(got?.hosts).includes('token'), 'no secret in what is logged');
    assert.equal(jobLogins({}, {}), null);
  });

  test('logins: DOCKER_AUTH_CONFIG as a File-type variable; bad JSON does not echo it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-gl-auth-'));
    const file = join(dir, 'DOCKER_AUTH_CONFIG');
    writeFileSync(file, JSON.stringify({ auths: { 'quay.io': { auth: b64('q:1') } } }));
    const got = jobLogins({ ...TOKENS, DOCKER_AUTH_CONFIG: file }, {});
    assert.equal(got?.hosts['quay.io'], 'DOCKER_AUTH_CONFIG');
    assert.equal(got?.hosts['registry.example.com'], 'CI_REGISTRY_USER');
    const secret = '{"auths": {"x": {"auth": "c2VjcmV0"}},';
    assert.throws(
      () => jobLogins({ DOCKER_AUTH_CONFIG: secret }, {}),
      (e: Error) =>
        /DOCKER_AUTH_CONFIG is not a JSON Docker config/.test(e.message) && !e.message.includes('c2VjcmV0'),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  test('dotenv: the generic names, then the same under the job-name prefix', () => {
    assert.equal(jobPrefix('api'), 'KILN_API_');
    assert.equal(jobPrefix('build worker:arm64'), 'KILN_BUILD_WORKER_ARM64_');
    assert.equal(jobPrefix('kiln-build'), 'KILN_BUILD_');
    assert.equal(jobPrefix(undefined), '');
    const result = {
      digest: 'sha256:' + 'a'.repeat(64),
      destinations: ['r/x:1'],
      imageId: 'sha256:' + 'b'.repeat(64),
      isolation: { rung: 'plain' },
    } as unknown as BuildResult;
    const lines = dotenv(result, ['r/x@sha256:' + 'a'.repeat(64)], 'api')
      .trim()
      .split('\n');
    assert.equal(lines.length, 16, "within GitLab's dotenv variable limit (20)");
    assert.ok(lines.includes(`KILN_IMAGE_DIGEST=${result.digest}`));
    assert.ok(lines.includes(`KILN_API_IMAGE_DIGEST=${result.digest}`));
    assert.ok(lines.includes('KILN_API_IMAGE_REF=r/x:1'));
    assert.equal(dotenv(result, [], undefined).trim().split('\n').length, 8);
    assert.ok(lines.includes('KILN_PLATFORM_DIGESTS='), 'empty for one platform');
    const multi = {
      ...result,
      platforms: [
        { platform: 'linux/amd64', digest: 'sha256:' + 'c'.repeat(64) },
        { platform: 'linux/arm/v7', digest: 'sha256:' + 'd'.repeat(64) },
      ],
    } as BuildResult;
    assert.ok(
      dotenv(multi, [], 'api')
        .split('\n')
        .includes(
          `KILN_API_PLATFORM_DIGESTS=linux/amd64=sha256:${'c'.repeat(64)},linux/arm/v7=sha256:${'d'.repeat(64)}`,
        ),
    );
  });
});
