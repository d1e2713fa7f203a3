/**
 * The GitLab CI/CD component: its `spec:inputs` header and the job interpolated with a small
 * `$[[ inputs.x ]]` interpolator (GitLab's rules: typed defaults, options, regex, whole-value
 * interpolation keeps the type), both validated with ajv against GitLab's CI schema (draft-07, a copy
 * in fixtures/). Then a real pipeline run by gitlab-ci-local (shell executor) that includes the
 * component, builds and pushes to a loopback registry, and a downstream job that reads
 * KILN_IMAGE_DIGEST from the dotenv report.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { destinations, dockerConfig, gitlabInputs, TEMPLATE_VARIABLES } from '../../src/ci/gitlab/main.ts';

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const TEMPLATE = join(ROOT, 'gitlab/templates/build.yml');

interface InputSpec {
  type?: 'string' | 'boolean' | 'number' | 'array';
  default?: unknown;
  options?: unknown[];
  regex?: string;
  description?: string;
}

class InterpolationError extends Error {}

/** GitLab's input rules, then `$[[ inputs.x ]]` replaced in every string of the parsed job YAML. */
function interpolate(
  spec: Record<string, InputSpec>,
  body: unknown,
  given: Record<string, unknown>,
): unknown {
  for (const name of Object.keys(given)) {
    if (!(name in spec)) throw new InterpolationError(`unknown input: ${name}`);
  }
  const values: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(spec)) {
    const v = name in given ? given[name] : s.default;
    if (v === undefined)
      throw new InterpolationError(`\`${name}\` input: required value has not been provided`);
    const type = s.type ?? 'string';
    const actual = Array.isArray(v) ? 'array' : typeof v;
    if (actual !== type) throw new InterpolationError(`\`${name}\` input: provided value is not a ${type}`);
    if (s.options && !s.options.includes(v))
      throw new InterpolationError(
        `\`${name}\` input: \`${String(v)}\` cannot be used because it is not in the list of allowed options`,
      );
    if (s.regex && !new RegExp(s.regex).test(String(v)))
      throw new InterpolationError(`\`${name}\` input: provided value does not match required RegEx pattern`);
    values[name] = v;
  }
  const one = /^\$\[\[\s*inputs\.([\w-]+)\s*\]\]$/;
  const any = /\$\[\[\s*inputs\.([\w-]+)\s*\]\]/g;
  const lookup = (name: string): unknown => {
    if (!(name in values)) throw new InterpolationError(`unknown interpolation key: \`${name}\``);
    return values[name];
  };
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') {
      const m = one.exec(node);
      if (m) return lookup(m[1]!);
      return node.replace(any, (_, name: string) => String(lookup(name)));
    }
    if (Array.isArray(node)) return node.map(walk);
    if (node && typeof node === 'object')
      return Object.fromEntries(Object.entries(node).map(([k, v]) => [walk(k) as string, walk(v)]));
    return node;
  };
  return walk(body);
}

function loadTemplate(): { header: { spec: { inputs: Record<string, InputSpec> } }; body: unknown } {
  const docs = parseAllDocuments(readFileSync(TEMPLATE, 'utf8'));
  assert.equal(docs.length, 2, 'a spec header, ---, then the jobs');
  for (const d of docs) assert.deepEqual(d.errors, []);
  return {
    header: docs[0]!.toJS() as { spec: { inputs: Record<string, InputSpec> } },
    body: docs[1]!.toJS() as unknown,
  };
}

const schema = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures/gitlab-ci.json'), 'utf8'),
) as object;
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const validate = ajv.compile(schema);
function schemaErrors(doc: unknown): string {
  return validate(doc) ? '' : ajv.errorsText(validate.errors, { separator: '\n' });
}

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
        stage: 'package',
        image: 'registry.example.com/kiln:1',
        context: 'app',
        dockerfile: 'app/Dockerfile',
        destinations: 'r.example/a:1 r.example/a:2',
        'build-args': 'A=1\nB=2',
        target: 'prod',
        labels: 'x=y',
        push: false,
        platform: 'linux/arm64/v8',
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
      const k = job['kiln-build']!;
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
    ['push not a boolean', { push: 'yes' }, /not a boolean/],
    ['unknown input', { tags: 'x' }, /unknown input: tags/],
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
  const dest: [string, NodeJS.ProcessEnv, string[]][] = [
    [
      'given',
      { KILN_DESTINATIONS: 'a/b:1 a/b:2,a/b:3\na/b:4', CI_REGISTRY_IMAGE: 'x' },
      ['a/b:1', 'a/b:2', 'a/b:3', 'a/b:4'],
    ],
    ['default sha', { CI_REGISTRY_IMAGE: 'reg/g/p', CI_COMMIT_SHORT_SHA: 'abc123' }, ['reg/g/p:abc123']],
    [
      'default sha + tag',
      { CI_REGISTRY_IMAGE: 'reg/g/p', CI_COMMIT_SHORT_SHA: 'abc123', CI_COMMIT_TAG: 'v1.0' },
      ['reg/g/p:abc123', 'reg/g/p:v1.0'],
    ],
    ['nothing', {}, []],
  ];
  for (const [name, env, want] of dest) {
    test(`destinations: ${name}`, () => assert.deepEqual(destinations(env), want));
  }

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
    assert.equal(i.platform, 'linux/amd64');
    assert.throws(
      () => gitlabInputs({ KILN_DESTINATIONS: 'a/b:1', KILN_BUILD_ARGS: 'oops' }),
      /not KEY=VALUE/,
    );
  });

  test('docker config gets the job registry and dependency proxy logins, existing entries win', () => {
    const env = {
      CI_REGISTRY: 'registry.example.com',
      CI_REGISTRY_USER: 'gitlab-ci-token',
      CI_REGISTRY_PASSWORD: 'job-token',
      CI_DEPENDENCY_PROXY_SERVER: 'gitlab.example.com:443',
      CI_DEPENDENCY_PROXY_USER: 'gitlab-ci-token',
      CI_DEPENDENCY_PROXY_PASSWORD: 'proxy-token',
    };
    const c = dockerConfig(env, {
      auths: { 'gitlab.example.com:443': { auth: 'bWluZTp4' } },
      credsStore: 'x',
    });
    assert.deepEqual(c, {
      credsStore: 'x',
      auths: {
        'gitlab.example.com:443': { auth: 'bWluZTp4' },
        'registry.example.com': { auth: Buffer.from('gitlab-ci-token:job-token').toString('base64') },
      },
    });
    assert.equal(dockerConfig({}, {}), null);
  });
});

// gitlab-ci-local copies the project into its build dir with rsync (Debian package rsync).
const HAS_RSYNC = spawnSync('rsync', ['--version'], { stdio: 'ignore' }).status === 0;

describe(
  'pipeline with the component, run by gitlab-ci-local (shell executor)',
  {
    timeout: 600_000,
    skip: HAS_RSYNC ? false : 'rsync is not installed (gitlab-ci-local needs it: apt-get install rsync)',
  },
  () => {
    let reg: TestRegistry;
    let work: string;
    let dist: string;
    const PASSWORD = 'gitlab-registry-secret';

    before(async () => {
      work = mkdtempSync(join(tmpdir(), 'kiln-gitlab-test-'));
      dist = join(work, 'dist');
      await execFileP(process.execPath, [join(ROOT, 'scripts/bundle.mjs'), dist], { cwd: ROOT });
      reg = await startRegistry({ auth: 'htpasswd', users: { ci: PASSWORD } });
      await pushBusyboxImage(reg, 'base/busybox', 'latest');
    });
    after(async () => {
      await reg?.stop();
      rmSync(work, { recursive: true, force: true });
    });

    test('kiln-build pushes; a downstream job reads KILN_IMAGE_DIGEST from the dotenv report', async () => {
      const project = join(work, 'project');
      mkdirSync(join(project, 'templates'), { recursive: true });
      cpSync(TEMPLATE, join(project, 'templates/build.yml'));
      writeFileSync(
        join(project, 'Dockerfile'),
        `FROM ${reg.host}/base/busybox:latest\nARG GREETING\nRUN echo "$GREETING" > /greeting\nCOPY hello.txt /hello.txt\n`,
      );
      writeFileSync(join(project, 'hello.txt'), 'hello from gitlab\n');
      const git = (...args: string[]): Promise<{ stdout: string }> =>
        execFileP('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: project });
      await git('init', '-q', '-b', 'main');
      await git('remote', 'add', 'origin', 'git@gitlab.example.com:kiln/kiln.git');
      await git('add', '.');
      await git('commit', '-q', '-m', 'component');
      const sha = (await git('rev-parse', 'HEAD')).stdout.trim();
      // A component of this very project at this commit: gitlab-ci-local reads templates/ locally.
      writeFileSync(
        join(project, '.gitlab-ci.yml'),
        [
          'include:',
          `  - component: gitlab.example.com/kiln/kiln/build@${sha}`,
          '    inputs:',
          '      image: kiln-runner:test',
          `      insecure-registries: ${reg.host}`,
          '      build-args: GREETING=from gitlab',
          '      isolation: auto',
          'stages: [build, verify]',
          'verify:',
          '  stage: verify',
          '  needs: [kiln-build]',
          '  script:',
          '    - echo "got digest $KILN_IMAGE_DIGEST for $KILN_IMAGE_REF"',
          '    - echo "$KILN_IMAGE_DIGEST" > digest-from-dotenv.txt',
          '    - test -n "$KILN_IMAGE_DIGEST"',
          '  artifacts:',
          '    paths: [digest-from-dotenv.txt]',
          '',
        ].join('\n'),
      );
      const args = [
        '--force-shell-executor',
        '--ignore-predefined-vars',
        'CI_REGISTRY,CI_REGISTRY_IMAGE',
        '--artifacts-to-source',
        '--variable',
        `KILN_HOME=${dist}`,
        '--variable',
        `CI_REGISTRY=${reg.host}`,
        '--variable',
        `CI_REGISTRY_IMAGE=${reg.host}/kiln/app`,
        '--variable',
        'CI_REGISTRY_USER=ci',
        '--variable',
        `CI_REGISTRY_PASSWORD=${PASSWORD}`,
      ];
      const child = spawn(join(ROOT, 'node_modules/.bin/gitlab-ci-local'), args, {
        cwd: project,
        env: { ...process.env, FORCE_COLOR: '0', HOME: join(work, 'home') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
      assert.equal(code, 0, out);

      const { stdout } = await execFileP('skopeo', [
      'inspect', '--tls-verify=false', '--creds', `ci:${PASSWORD}`, `docker://${reg.host}/kiln/app:${sha.slice(0, 8)}`,
    ]); // prettier-ignore
      const digest = (JSON.parse(stdout) as { Digest: string }).Digest;
      assert.match(digest, /^sha256:[a-f0-9]{64}$/);
      assert.ok(out.includes(`got digest ${digest} for ${reg.host}/kiln/app:${sha.slice(0, 8)}`), out);
      assert.equal(readFileSync(join(project, 'digest-from-dotenv.txt'), 'utf8').trim(), digest);
      assert.ok(!out.includes(PASSWORD), 'the registry password is not printed');
    });
  },
);
