/**
 * The repository as a GitLab CI/CD catalog project: components in `templates/` at the root (where
 * GitLab reads them), README and LICENSE, a root `.gitlab-ci.yml` that tests the project, builds the
 * runner image with the component at the same commit and releases on semantic-version tags. Every
 * YAML file is validated against GitLab's CI schema; the pipeline as gitlab-ci-local resolves it
 * (`--preview`: includes, inputs and job merging applied) is validated too. The variables the
 * template sets are exactly the ones src/ci/gitlab reads.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { gitlabInputs, metadataArgs, TEMPLATE_VARIABLES } from '../../src/ci/gitlab/main.ts';
import { destinations } from '../../src/ci/gitlab/tags.ts';
import { interpolate, loadTemplate, ROOT, schemaErrors } from './fixtures/gitlab-template.ts';

const execFileP = promisify(execFile);
type Obj = Record<string, unknown>;
const HAS_RSYNC = spawnSync('rsync', ['--version'], { stdio: 'ignore' }).status === 0;

/** Component files as GitLab finds them: templates/<name>.yml or templates/<name>/template.yml. */
function components(): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(join(ROOT, 'templates'), { withFileTypes: true })) {
    if (e.isFile() && /\.ya?ml$/.test(e.name)) out.set(e.name.replace(/\.ya?ml$/, ''), `templates/${e.name}`);
    if (e.isDirectory() && existsSync(join(ROOT, 'templates', e.name, 'template.yml')))
      out.set(e.name, `templates/${e.name}/template.yml`);
  }
  return out;
}

describe('CI/CD catalog layout', () => {
  test('templates/ at the root holds the build component; README and LICENSE at the root', () => {
    const found = components();
    assert.deepEqual([...found.keys()], ['build']);
    for (const name of found.keys()) assert.match(name, /^[a-z0-9_-]+$/, 'catalog component name');
    assert.ok(existsSync(join(ROOT, 'README.md')));
    assert.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /Apache License/);
    assert.ok(
      !existsSync(join(ROOT, 'gitlab/templates')),
      'one copy of the component, where GitLab reads it',
    );
  });

  for (const [name, file] of components()) {
    test(`component ${name}: header and default job are valid GitLab CI`, () => {
      const { header, body } = loadTemplate(join(ROOT, file));
      assert.equal(schemaErrors(header), '');
      assert.equal(schemaErrors(interpolate(header.spec.inputs, body, {})), '');
    });
  }

  test('the template sets exactly the variables src/ci/gitlab reads', () => {
    const read = new Set<string>();
    const env = new Proxy({} as NodeJS.ProcessEnv, {
      get: (_t, k) => {
        if (typeof k === 'string') read.add(k);
        // Enough for the parser to get through: a registry to push to.
        return k === 'CI_REGISTRY_IMAGE'
          ? 'reg.example/g/p'
          : k === 'CI_COMMIT_SHORT_SHA'
            ? 'abc'
            : undefined;
      },
    });
    gitlabInputs(env);
    destinations(env);
    metadataArgs(env, false);
    const kiln = [...read].filter((k) => k.startsWith('KILN_'));
    // KILN_DOTENV is read by main() after the build (the report's file name).
    const main = readFileSync(join(ROOT, 'src/ci/gitlab/main.ts'), 'utf8');
    assert.ok(main.includes('env.KILN_DOTENV'));
    assert.deepEqual([...kiln, 'KILN_DOTENV'].sort(), [...TEMPLATE_VARIABLES].sort());
  });

  test('the default runner image is pinned to the version of this release, never :latest', () => {
    const { header } = loadTemplate();
    const image = String(header.spec.inputs.image!.default);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(image, `registry.gitlab.com/kiln-build/kiln:${pkg.version}`);
  });
});

describe('the root .gitlab-ci.yml', () => {
  const ci = parse(readFileSync(join(ROOT, '.gitlab-ci.yml'), 'utf8')) as Obj;

  test('is valid GitLab CI', () => assert.equal(schemaErrors(ci), ''));

  test('tests, checks dist/, builds the runner image with the component at this commit, releases on tags', () => {
    const script = (job: string): string => ((ci[job] as Obj).script as string[]).join('\n');
    assert.match(script('test'), /npm test/);
    assert.match(script('dist'), /npm run bundle[\s\S]*git diff --exit-code/);
    const inc = (ci.include as Obj[])[0]!;
    assert.equal(inc.component, '$CI_SERVER_FQDN/$CI_PROJECT_PATH/build@$CI_COMMIT_SHA');
    const inputs = inc.inputs as Obj;
    const declared = Object.keys(loadTemplate().header.spec.inputs);
    assert.deepEqual(
      Object.keys(inputs).filter((k) => !declared.includes(k)),
      [],
    );
    assert.equal(inputs['job-name'], 'runner-image');
    assert.equal(inputs.dockerfile, 'gitlab/Dockerfile');
    const release = ci.release as Obj;
    assert.equal((release.release as Obj).tag_name, '$CI_COMMIT_TAG');
    assert.deepEqual(release.rules, [{ if: '$CI_COMMIT_TAG =~ /^\\d+\\.\\d+\\.\\d+$/' }]);
  });

  test("the release job's version checks pass for package.json's version and fail for another", async () => {
    const lines = ((ci.release as Obj).script as string[]).filter((l) => !l.startsWith('#'));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const run = (tag: string): number =>
      spawnSync('sh', ['-ec', lines.join('\n')], { cwd: ROOT, env: { ...process.env, CI_COMMIT_TAG: tag } })
        .status ?? 1;
    assert.equal(run(pkg.version), 0);
    assert.notEqual(run('9.9.9'), 0);
  });

  test(
    'as gitlab-ci-local resolves it: the component job merged with the local one, valid GitLab CI',
    { skip: HAS_RSYNC ? false : 'rsync is not installed (gitlab-ci-local needs it)', timeout: 120_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kiln-catalog-'));
      try {
        for (const f of ['templates', '.gitlab-ci.yml', 'package.json'])
          cpSync(join(ROOT, f), join(dir, f), { recursive: true });
        const git = (...a: string[]): Promise<unknown> =>
          execFileP('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...a], { cwd: dir });
        await git('init', '-q', '-b', 'main');
        await git('remote', 'add', 'origin', 'git@gitlab.example.com:kiln-build/kiln.git');
        await git('add', '.');
        await git('commit', '-q', '-m', 'catalog');
        const { stdout } = await execFileP(join(ROOT, 'node_modules/.bin/gitlab-ci-local'), ['--preview'], {
          cwd: dir,
          env: { ...process.env, FORCE_COLOR: '0', HOME: join(dir, '.home') },
        });
        const docs = parseAllDocuments(stdout.slice(stdout.indexOf('---')));
        const resolved = docs.at(-1)!.toJS() as Obj;
        assert.equal(schemaErrors(resolved), '');
        const job = resolved['runner-image'] as Obj;
        const vars = job.variables as Obj;
        assert.equal(vars.KILN_DOCKERFILE, 'gitlab/Dockerfile');
        assert.equal(vars.KILN_REPOSITORY, '$CI_REGISTRY_IMAGE');
        assert.equal(vars.KILN_HOME, '$CI_PROJECT_DIR/dist', 'the fresh bundle runs');
        assert.deepEqual(
          (job.needs as Obj[]).map((n) => n.job),
          ['dist'],
        );
        assert.equal((job.image as Obj).name, '$NODE_IMAGE');
        assert.deepEqual(job.script, ['node "${KILN_HOME:-/opt/kiln}/gitlab.js"']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
