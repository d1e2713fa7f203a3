/**
 * Whole pipelines with the component, run by gitlab-ci-local (shell executor) against loopback
 * registries, asserting on what the registry holds (skopeo), not only on the job log:
 * - one project includes the component twice (job-name api and worker; worker's context has only a
 *   Containerfile) and a third time for a context without any Dockerfile, which `rules: exists`
 *   drops; the base image comes from a second registry whose login is only in DOCKER_AUTH_CONFIG
 *   (on the tag pipeline: only in the dependency proxy variables);
 * - the same project on the default branch (sha + latest), on a tag pipeline (sha + the tag) and on
 *   a feature branch (sha only, ref slug opted in for worker);
 * - OCI labels and manifest annotations from CI variables on the pushed images;
 * - a downstream job reads KILN_IMAGE_DIGEST from the dotenv report.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { gitlabCiLocal, passedJobs, ROOT, TEMPLATE } from './fixtures/gitlab-template.ts';

const execFileP = promisify(execFile);
// gitlab-ci-local copies the project into its build dir with rsync (Debian package rsync).
const HAS_RSYNC = spawnSync('rsync', ['--version'], { stdio: 'ignore' }).status === 0;
const OCI = 'org.opencontainers.image';

/** Every directory called `name` under root (gitlab-ci-local keeps job copies and its cache there). */
function findDirs(root: string, name: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = join(d, e.name);
      if (e.name === name) out.push(p);
      else if (e.name !== '.git') walk(p);
    }
  };
  walk(root);
  return out;
}

interface Inspect {
  Digest: string;
  Labels: Record<string, string> | null;
}

describe(
  'pipelines with the component, run by gitlab-ci-local',
  {
    timeout: 900_000,
    skip: HAS_RSYNC ? false : 'rsync is not installed (gitlab-ci-local needs it: apt-get install rsync)',
  },
  () => {
    let reg: TestRegistry;
    let base: TestRegistry;
    let work: string;
    let dist: string;
    let project: string;
    let sha: string;
    const PASSWORD = 'gitlab-registry-secret';
    const BASE_PASSWORD = 'base-registry-secret';

    const git = async (...args: string[]): Promise<string> =>
      (
        await execFileP('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
          cwd: project,
        })
      ).stdout;
    const skopeo = async (...args: string[]): Promise<string> =>
      (
        await execFileP('skopeo', [
          ...args.slice(0, 1),
          '--tls-verify=false',
          '--creds',
          `ci:${PASSWORD}`,
          ...args.slice(1),
        ])
      ).stdout;
    const inspect = async (ref: string): Promise<Inspect> =>
      JSON.parse(await skopeo('inspect', `docker://${reg.host}/${ref}`)) as Inspect;
    const tags = async (repo: string): Promise<string[]> =>
      (
        JSON.parse(await skopeo('list-tags', `docker://${reg.host}/${repo}`)) as { Tags: string[] }
      ).Tags.sort();
    const manifestAnnotations = async (ref: string): Promise<Record<string, string>> =>
      (
        JSON.parse(await skopeo('inspect', '--raw', `docker://${reg.host}/${ref}`)) as {
          annotations?: Record<string, string>;
        }
      ).annotations ?? {};

    /** Every path in the image's layers (skopeo copies it to an OCI layout). */
    async function imageFiles(ref: string): Promise<string[]> {
      const dir = mkdtempSync(join(work, 'oci-'));
      await execFileP('skopeo', [
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        `ci:${PASSWORD}`,
        `docker://${reg.host}/${ref}`,
        `oci:${dir}:x`,
      ]);
      const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
        manifests: { digest: string }[];
      };
      const blob = (d: string): string => join(dir, 'blobs', ...d.split(':'));
      const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), 'utf8')) as {
        layers: { digest: string }[];
      };
      const out: string[] = [];
      for (const l of manifest.layers)
        out.push(...(await execFileP('tar', ['-tzf', blob(l.digest)])).stdout.split('\n').filter(Boolean));
      return out.map((f) => f.replace(/^\.\//, ''));
    }

    /** Runs the pipeline with CI_REGISTRY_IMAGE = <registry>/<ns>/shop. */
    async function pipeline(
      ns: string,
      extra: string[] = [],
      vars: Record<string, string> = {},
    ): Promise<string> {
      const auth = Buffer.from(`puller:${BASE_PASSWORD}`).toString('base64');
      const { code, out } = await gitlabCiLocal(
        project,
        join(work, 'home'),
        {
          KILN_HOME: dist,
          CI_REGISTRY: reg.host,
          CI_REGISTRY_IMAGE: `${reg.host}/${ns}/shop`,
          CI_REGISTRY_USER: 'ci',
          CI_REGISTRY_PASSWORD: PASSWORD,
          DOCKER_AUTH_CONFIG: JSON.stringify({ auths: { [base.host]: { auth } } }),
          ...vars,
        },
        [
          '--ignore-predefined-vars',
          'CI_REGISTRY,CI_REGISTRY_IMAGE,CI_DEPENDENCY_PROXY_SERVER,CI_DEPENDENCY_PROXY_USER',
          ...extra,
        ],
      );
      assert.equal(code, 0, out);
      assert.ok(!out.includes(PASSWORD) && !out.includes(BASE_PASSWORD), 'no password in the job log');
      assert.ok(!out.includes(auth), 'no DOCKER_AUTH_CONFIG secret in the job log');
      return out;
    }

    before(async () => {
      work = mkdtempSync(join(tmpdir(), 'kiln-gitlab-pipelines-'));
      dist = join(work, 'dist');
      await execFileP(process.execPath, [join(ROOT, 'scripts/bundle.mjs'), dist], { cwd: ROOT });
      reg = await startRegistry({ auth: 'htpasswd', users: { ci: PASSWORD } });
      base = await startRegistry({ auth: 'htpasswd', users: { puller: BASE_PASSWORD } });
      await pushBusyboxImage(base, 'base/busybox', 'latest');

      project = join(work, 'shop');
      mkdirSync(join(project, 'templates'), { recursive: true });
      cpSync(TEMPLATE, join(project, 'templates/build.yml'));
      const from = `FROM ${base.host}/base/busybox:latest\n`;
      mkdirSync(join(project, 'api'));
      writeFileSync(
        join(project, 'api/Dockerfile'),
        `${from}COPY hello.txt /hello.txt\nRUN echo api > /which\n`,
      );
      writeFileSync(join(project, 'api/hello.txt'), 'hello from api\n');
      mkdirSync(join(project, 'worker'));
      writeFileSync(join(project, 'worker/Containerfile'), `${from}RUN echo worker > /which\n`);
      // Context `.`: the project dir, where GitLab restores the layer cache (.kiln-cache).
      writeFileSync(join(project, 'site.Dockerfile'), `${from}COPY . /src/\n`);
      mkdirSync(join(project, 'docs'));
      writeFileSync(join(project, 'docs/index.md'), '# no image here\n');
      await git('init', '-q', '-b', 'main');
      await git('remote', 'add', 'origin', 'git@gitlab.example.com:acme/shop.git');
      await git('add', '.');
      await git('commit', '-q', '-m', 'shop');
      sha = (await git('rev-parse', 'HEAD')).trim();
      const include = (name: string, inputs: string[]): string[] => [
        `  - component: gitlab.example.com/acme/shop/build@${sha}`,
        '    inputs:',
        `      job-name: ${name}`,
        '      image: kiln-runner:test',
        `      insecure-registries: ${reg.host},${base.host}`,
        ...inputs.map((i) => `      ${i}`),
      ];
      writeFileSync(
        join(project, '.gitlab-ci.yml'),
        [
          'include:',
          ...include('api', ['context: api', 'repository: $CI_REGISTRY_IMAGE/api']),
          ...include('worker', [
            'context: worker',
            'repository: $CI_REGISTRY_IMAGE/worker',
            'tag-ref-slug: true',
          ]),
          ...include('docs', ['context: docs', 'repository: $CI_REGISTRY_IMAGE/docs']),
          ...include('site', ['dockerfile: site.Dockerfile', 'repository: $CI_REGISTRY_IMAGE/site']),
          'stages: [build, verify]',
          'verify:',
          '  stage: verify',
          '  needs: [api]',
          '  script:',
          '    - echo "got digest $KILN_IMAGE_DIGEST for $KILN_IMAGE_REF"',
          '    - echo "$KILN_IMAGE_DIGEST" > digest-from-dotenv.txt',
          '    - test -n "$KILN_IMAGE_DIGEST"',
          '  artifacts:',
          '    paths: [digest-from-dotenv.txt]',
          'verify-both:',
          '  stage: verify',
          '  needs: [api, worker]',
          '  script:',
          '    - echo "$KILN_API_IMAGE_DIGEST $KILN_WORKER_IMAGE_DIGEST $KILN_WORKER_IMAGE" > both.txt',
          '  artifacts:',
          '    paths: [both.txt]',
          '',
        ].join('\n'),
      );
    });
    after(async () => {
      await reg?.stop();
      await base?.stop();
      rmSync(work, { recursive: true, force: true });
    });

    test('default branch: two includes build two images, sha + latest, OCI labels, dotenv', async () => {
      const out = await pipeline('main');
      assert.deepEqual(passedJobs(out).sort(), ['api', 'site', 'verify', 'verify-both', 'worker'], out);
      const short = sha.slice(0, 8);
      assert.deepEqual(await tags('main/shop/api'), [short, 'latest'].sort());
      assert.deepEqual(await tags('main/shop/worker'), [short, 'latest', 'main'].sort());
      const api = await inspect(`main/shop/api:${short}`);
      const worker = await inspect(`main/shop/worker:${short}`);
      assert.notEqual(api.Digest, worker.Digest, 'two different images');
      assert.equal((await inspect('main/shop/api:latest')).Digest, api.Digest);
      assert.equal((await inspect('main/shop/worker:main')).Digest, worker.Digest);

      const labels = api.Labels ?? {};
      assert.equal(labels[`${OCI}.revision`], sha);
      assert.equal(labels[`${OCI}.source`], 'https://gitlab.example.com/acme/shop');
      assert.equal(labels[`${OCI}.url`], 'https://gitlab.example.com/acme/shop');
      assert.equal(labels[`${OCI}.title`], 'shop');
      assert.equal(labels[`${OCI}.version`], 'main');
      assert.ok(!Number.isNaN(Date.parse(labels[`${OCI}.created`] ?? '')), 'created is a date');
      const ann = await manifestAnnotations(`main/shop/api:${short}`);
      assert.equal(ann[`${OCI}.revision`], sha);
      assert.equal(ann[`${OCI}.source`], 'https://gitlab.example.com/acme/shop');

      assert.ok(out.includes(`${base.host} (DOCKER_AUTH_CONFIG)`), 'the login list names the base registry');
      // The job cache holds the layer blobs, never the extracted-tree store (GitLab would zip it).
      const cacheDirs = findDirs(project, '.kiln-cache');
      assert.ok(cacheDirs.length > 0, 'gitlab-ci-local kept a .kiln-cache');
      for (const d of cacheDirs) {
        assert.ok(existsSync(join(d, 'blobs')), `${d} holds blobs`);
        assert.ok(!existsSync(join(d, 'trees')), `${d} holds no trees/`);
      }
      assert.ok(out.includes(`got digest ${api.Digest} for ${reg.host}/main/shop/api:${short}`), out);
      assert.equal(readFileSync(join(project, 'digest-from-dotenv.txt'), 'utf8').trim(), api.Digest);
      assert.equal(
        readFileSync(join(project, 'both.txt'), 'utf8').trim(),
        `${api.Digest} ${worker.Digest} ${reg.host}/main/shop/worker@${worker.Digest}`,
        'a job that needs both kiln jobs gets each one under its job-name prefix',
      );
      assert.ok(!/\bdocs\b.*starting/.test(out), 'rules: exists dropped the job without a Dockerfile');
    });

    test('tag pipeline: sha + the Git tag, no latest; version label is the tag', async () => {
      // The base registry's login comes from the dependency proxy variables this time.
      const out = await pipeline('tagged', ['--unset-variable', 'CI_COMMIT_BRANCH'], {
        CI_COMMIT_TAG: 'v1.2.0',
        DOCKER_AUTH_CONFIG: '',
        CI_DEPENDENCY_PROXY_SERVER: base.host,
        CI_DEPENDENCY_PROXY_USER: 'puller',
        CI_DEPENDENCY_PROXY_PASSWORD: BASE_PASSWORD,
      });
      assert.ok(out.includes(`${base.host} (CI_DEPENDENCY_PROXY_USER)`), out);
      assert.ok(!out.includes('(DOCKER_AUTH_CONFIG)'), out);
      // The second run restored the first run's layer cache into the context: COPY . left it out.
      const files = await imageFiles(`tagged/shop/site:${sha.slice(0, 8)}`);
      assert.ok(files.includes('src/api/hello.txt'), files.join(' '));
      assert.ok(files.includes('src/site.Dockerfile'));
      assert.deepEqual(
        files.filter((f) => f.includes('.kiln-cache')),
        [],
        'the layer cache is not part of the context',
      );
      const short = sha.slice(0, 8);
      assert.deepEqual(await tags('tagged/shop/api'), [short, 'v1.2.0'].sort());
      const api = await inspect('tagged/shop/api:v1.2.0');
      assert.equal(api.Digest, (await inspect(`tagged/shop/api:${short}`)).Digest);
      assert.equal(api.Labels?.[`${OCI}.version`], 'v1.2.0');
    });

    test('feature branch: sha only (worker opted into the ref slug); oci-labels can be turned off', async () => {
      await git('checkout', '-q', '-b', 'feature/Login-Form');
      const ci = readFileSync(join(project, '.gitlab-ci.yml'), 'utf8');
      writeFileSync(
        join(project, '.gitlab-ci.yml'),
        ci.replace(
          '      repository: $CI_REGISTRY_IMAGE/api\n',
          '      repository: $CI_REGISTRY_IMAGE/api\n      oci-labels: false\n',
        ),
      );
      try {
        await pipeline('feature');
      } finally {
        writeFileSync(join(project, '.gitlab-ci.yml'), ci);
        await git('checkout', '-q', 'main');
      }
      const short = sha.slice(0, 8);
      assert.deepEqual(await tags('feature/shop/api'), [short]);
      assert.deepEqual(await tags('feature/shop/worker'), [short, 'feature-login-form'].sort());
      const api = await inspect(`feature/shop/api:${short}`);
      assert.deepEqual(
        Object.keys(api.Labels ?? {}).filter((k) => k.startsWith(OCI)),
        [],
        'oci-labels: false adds no labels',
      );
      assert.deepEqual(await manifestAnnotations(`feature/shop/api:${short}`), {});
    });
  },
);
