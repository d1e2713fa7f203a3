/**
 * The GitHub Action's input side without a build: build-push-action's list rules, every one of its
 * inputs fed in and checked to be either honoured (it changes kiln's argv or the action's plan) or
 * reported (an ::error / ::warning naming it), secrets in its forms and never echoed, the child's
 * environment (no INPUT_*, the password only in a 0600 file), failure annotations, and the README
 * tables checked against action.yml so they cannot drift.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { parseList, splitArgs, splitCsvLine } from '../../src/ci/github/lists.ts';
import { readInputs } from '../../src/ci/github/action-inputs.ts';
import { planAction, type ActionPlan } from '../../src/ci/github/plan.ts';
import { cachePlan, exportPlan, parseAttrs } from '../../src/ci/github/exporters.ts';
import { childEnv } from '../../src/ci/github/child-env.ts';
import { lastKilnError, placeOf, redact } from '../../src/ci/github/failure.ts';
import { defaultGitContext } from '../../src/ci/github/git-context.ts';
import { takePasswordFile } from '../../src/cli/credential-file.ts';
import { envCredentials } from '../../src/cli/build-flags.ts';
import { KilnError } from '../../src/util/errors.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/** docker/build-push-action's inputs (its action.yml, current release) with their defaults. */
const BPA_INPUTS: Record<string, string> = {
  'add-hosts': '', allow: '', annotations: '', attests: '', 'build-args': '', 'build-contexts': '',
  builder: '', 'cache-from': '', 'cache-to': '', call: '', 'cgroup-parent': '', context: '', file: '',
  labels: '', load: 'false', network: '', 'no-cache': 'false', 'no-cache-filters': '', outputs: '',
  platforms: '', provenance: '', pull: 'false', push: 'false', sbom: '', secrets: '', 'secret-envs': '',
  'secret-files': '', 'shm-size': '', ssh: '', tags: '', target: '', ulimit: '',
  'github-token': '${{ github.token }}',
}; // prettier-ignore
const BPA_OUTPUTS = ['imageid', 'digest', 'metadata'];

interface ActionYml {
  inputs: Record<string, { default?: string }>;
  outputs: Record<string, unknown>;
}
const actionYml = parse(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as ActionYml;

/** An input getter as the runner gives it: action.yml's default for what the step leaves out. */
const getter =
  (m: Record<string, string>) =>
  (n: string): string =>
    m[n] ?? actionYml.inputs[n]?.default ?? '';

function withWork<T>(fn: (work: string) => T): T {
  const work = mkdtempSync(join(tmpdir(), 'kiln-gh-in-'));
  try {
    return fn(work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const plan = (m: Record<string, string>, env: NodeJS.ProcessEnv = {}, work = '/w'): ActionPlan =>
  planAction(readInputs(getter(m)), { env, work, temp: '/t' });

describe('list rules (build-push-action getInputList)', () => {
  const cases: [string, string, boolean, string[]][] = [
    ['newlines', 'a\nb\n\nc', false, ['a', 'b', 'c']],
    ['commas', 'a, b,c', false, ['a', 'b', 'c']],
    ['mixed + comments', '# tags\na,b\n  # x\nc', false, ['a', 'b', 'c']],
    ['quoted csv', '"a,b",c', false, ['a,b', 'c']],
    ['quoted quote', '"say ""hi""",x', false, ['say "hi"', 'x']],
    ['ignoreComma keeps commas', 'id=a,src=/f\nid=b,env=B', true, ['id=a,src=/f', 'id=b,env=B']],
    ['CRLF', 'A=1\r\nB=2\r\n', true, ['A=1', 'B=2']],
    ['ignoreComma: a quoted line loses its quotes', '"S=a b, c"\nT="x"', true, ['S=a b, c', 'T="x"']],
  ];
  for (const [name, text, ignoreComma, want] of cases) {
    test(`parseList: ${name}`, () => assert.deepEqual(parseList(text, ignoreComma), want));
  }
  test('splitCsvLine keeps empty fields', () => assert.deepEqual(splitCsvLine('a,,b'), ['a', '', 'b']));
  const argCases: [string, string[]][] = [
    ['--a b', ['--a', 'b']],
    [`--label "x=a b" --y='c d'`, ['--label', 'x=a b', '--y=c d']],
    ['  --e ""  ', ['--e', '']],
    ['a\\ b', ['a b']],
  ];
  for (const [text, want] of argCases) {
    test(`splitArgs ${JSON.stringify(text)}`, () => assert.deepEqual(splitArgs(text), want));
  }
});

describe('action.yml and the README tables', () => {
  test('every build-push-action input and output is in action.yml with the same default', () => {
    for (const [name, dflt] of Object.entries(BPA_INPUTS)) {
      assert.ok(actionYml.inputs[name], `action.yml lacks ${name}`);
      assert.equal(String(actionYml.inputs[name].default ?? ''), dflt, `default of ${name}`);
    }
    for (const name of BPA_OUTPUTS) assert.ok(actionYml.outputs[name], `action.yml lacks output ${name}`);
  });

  /** Rows `| \`name\` | default | ... |` of the table after the marker comment. */
  function readmeTable(marker: string): Map<string, string> {
    const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const at = text.indexOf(marker);
    assert.ok(at >= 0, `README has no "${marker}" table`);
    const rows = new Map<string, string>();
    for (const line of text.slice(at).split('\n').slice(1)) {
      if (!line.startsWith('|')) {
        if (rows.size > 0) break;
        continue;
      }
      const cells = line
        .trim()
        .replace(/^\||\|$/g, '')
        .split('|')
        .map((c) => c.trim());
      const m = /^`([\w-]+)`$/.exec(cells[0]!);
      if (!m) continue;
      assert.equal(cells.length, 3, `row ${line} has ${cells.length} cells (a stray | ?)`);
      rows.set(m[1]!, cells[1]!.replace(/^`|`$/g, ''));
    }
    return rows;
  }

  test('README tables list exactly action.yml inputs, with its defaults', () => {
    const bpa = readmeTable('<!-- build-push-action inputs');
    const kiln = readmeTable('<!-- kiln inputs');
    assert.deepEqual([...bpa.keys()].sort(), Object.keys(BPA_INPUTS).sort());
    const all = new Map([...bpa, ...kiln]);
    assert.deepEqual([...all.keys()].sort(), Object.keys(actionYml.inputs).sort());
    for (const [name, dflt] of all) {
      assert.equal(dflt, String(actionYml.inputs[name]!.default ?? ''), `README default of ${name}`);
    }
  });
});

describe('every build-push-action input is honoured or reported', () => {
  const host = 'reg.example';
  const base = { tags: `${host}/app:1` };
  const baseline = plan(base);
  /** [input, value, what shows it was taken]. */
  type Check = (p: ActionPlan) => boolean;
  const argv =
    (...words: string[]): Check =>
    (p) =>
      words.every((w) => p.args.includes(w));
  const reported =
    (input: string, level: 'error' | 'warning' | 'notice'): Check =>
    (p) =>
      p.reports.some((r) => r.input === input && r.level === level);
  const cases: [string, string, Check][] = [
    ['add-hosts', 'db:10.0.0.2', reported('add-hosts', 'error')],
    ['allow', 'network.host', reported('allow', 'notice')],
    [
      'annotations',
      'index:org.opencontainers.image.title=x',
      argv('--annotation', 'index:org.opencontainers.image.title=x'),
    ],
    ['attests', 'type=sbom,format=cyclonedx', argv('--attest', 'type=sbom,format=cyclonedx')],
    ['build-args', 'A=1', argv('--build-arg', 'A=1')],
    [
      'build-contexts',
      'base=docker-image://alpine:3',
      argv('--build-context', 'base=docker-image://alpine:3'),
    ],
    ['builder', 'builder-1', reported('builder', 'warning')],
    ['cache-from', 'type=gha', (p) => p.cache.gha?.restore === true && p.cache.gha.save === false],
    [
      'cache-to',
      'type=registry,ref=reg.example/app:buildcache,mode=max',
      argv('--cache-repo', 'reg.example/app'),
    ],
    ['call', 'outline', reported('call', 'error')],
    ['cgroup-parent', '/ci', reported('cgroup-parent', 'warning')],
    ['context', 'sub', argv('--context', 'sub')],
    ['file', 'sub/Containerfile', argv('--dockerfile', 'sub/Containerfile')],
    ['labels', 'a=b', argv('--label', 'a=b')],
    ['load', 'true', (p) => p.exports.load && argv('--tar-path', '/w/load.tar')(p)],
    ['network', 'none', argv('--network', 'none')],
    ['no-cache', 'true', (p) => !p.args.includes('--cache=true') && p.cache.dir === undefined],
    ['no-cache-filters', 'build', reported('no-cache-filters', 'warning')],
    ['outputs', 'type=docker,dest=/o/img.tar', argv('--tar-path', '/o/img.tar')],
    ['platforms', 'linux/amd64,linux/arm64', argv('--platform', 'linux/amd64,linux/arm64')],
    ['provenance', 'mode=max', argv('--attest', 'type=provenance,mode=max')],
    ['pull', 'true', (p) => p.reports.length === 0], // kiln always resolves bases in the registry
    [
      'push',
      'true',
      (p) => !p.args.includes('--no-push=true') && argv('--attest', 'type=provenance,mode=min')(p),
    ],
    ['sbom', 'true', argv('--attest', 'type=sbom')],
    ['secrets', 'TOKEN=abc', (p) => p.args.some((a) => /^id=TOKEN,src=\/w\/secret-0$/.test(a))],
    ['secret-envs', 'aws=AWS_KEY', argv('--secret', 'id=aws,env=AWS_KEY')],
    ['secret-files', 'npmrc=/home/u/.npmrc', argv('--secret', 'id=npmrc,src=/home/u/.npmrc')],
    ['shm-size', '2g', reported('shm-size', 'warning')],
    ['ssh', 'default', reported('ssh', 'error')],
    ['tags', `${host}/app:2`, argv('--destination', `${host}/app:2`)],
    ['target', 'final', argv('--target', 'final')],
    ['ulimit', 'nofile=1024:1024', reported('ulimit', 'warning')],
    ['github-token', 'ghs_token', (p) => p.args.includes('--git-token-file')],
  ];
  test('the cases cover every input', () => {
    assert.deepEqual(cases.map((c) => c[0]).sort(), Object.keys(BPA_INPUTS).sort());
  });
  for (const [input, value, check] of cases) {
    test(`${input}: ${value}`, () =>
      withWork((work) => {
        // github-token is used for the default (Git) context: give the step a repository.
        const env = { GITHUB_REPOSITORY: 'o/r', GITHUB_SHA: 'a'.repeat(40), GITHUB_REF: 'refs/heads/main' };
        const m = {
          ...base,
          [input]: value,
          ...(input === 'github-token' ? {} : { context: input === 'context' ? value : '.' }),
        };
        const p = planAction(readInputs(getter(m)), { env, work, temp: '/t' });
        const fixed = (q: ActionPlan): ActionPlan => ({
          ...q,
          args: q.args.map((a) => a.replace(work, '/w')),
        });
        assert.ok(
          check(fixed(p)),
          `${input} not honoured or reported:\n${p.args.join(' ')}\n${JSON.stringify(p.reports)}`,
        );
        // And it made a difference: the same step without the input plans something else.
        const changed =
          JSON.stringify(fixed(p).args) !== JSON.stringify(baseline.args) ||
          p.reports.length > 0 ||
          input === 'pull' ||
          input === 'cache-from';
        assert.ok(changed, `${input} changed nothing`);
      }));
  }
});

describe('secrets', () => {
  test("ID=value lines go to 0600 files; kiln's id=,src= form still works; errors never echo a value", () =>
    withWork((work) => {
      const p = planAction(
        readInputs(
          getter({ secrets: 'GIT_AUTH_TOKEN=ghp_xyz123,with,commas\nid=npm,src=/r/npmrc', context: '.' }),
        ),
        { env: {}, work, temp: '/t' },
      );
      const i = p.args.indexOf('--secret');
      assert.equal(p.args[i + 1], `id=GIT_AUTH_TOKEN,src=${join(work, 'secret-0')}`);
      assert.equal(readFileSync(join(work, 'secret-0'), 'utf8'), 'ghp_xyz123,with,commas');
      assert.equal(statSync(join(work, 'secret-0')).mode & 0o777, 0o600);
      assert.ok(p.args.includes('id=npm,src=/r/npmrc'));
      assert.deepEqual(p.masks, ['ghp_xyz123,with,commas']);
      assert.ok(!p.args.join(' ').includes('ghp_xyz'), 'the value is never in argv');
      for (const bad of ['=ghp_novalue_id', 'bad id=ghp_spaced_secret']) {
        assert.throws(
          () => planAction(readInputs(getter({ secrets: bad })), { env: {}, work, temp: '/t' }),
          (e: unknown) =>
            e instanceof KilnError && /input secrets: item 1/.test(e.message) && !e.format().includes('ghp_'),
        );
      }
    }));

  test('a GIT_AUTH_TOKEN secret authenticates a Git context', () =>
    withWork((work) => {
      const p = planAction(
        readInputs(getter({ secrets: 'GIT_AUTH_TOKEN=tok', context: 'https://git.example/o/r.git#main' })),
        { env: {}, work, temp: '/t' },
      );
      const at = p.args.indexOf('--git-token-file');
      assert.equal(p.args[at + 1], join(work, 'secret-0'));
    }));
});

describe('context, outputs, cache', () => {
  test('default context is the Git context of the commit, with the job token in a file', () =>
    withWork((work) => {
      const env = {
        GITHUB_SERVER_URL: 'https://github.com',
        GITHUB_REPOSITORY: 'o/r',
        GITHUB_SHA: 'f'.repeat(40),
        GITHUB_REF: 'refs/heads/main',
      };
      const p = planAction(readInputs(getter({ 'github-token': 'ghs_job' })), { env, work, temp: '/t' });
      assert.equal(p.context, `https://github.com/o/r.git#${'f'.repeat(40)}`);
      const f = p.args[p.args.indexOf('--git-token-file') + 1]!;
      assert.equal(readFileSync(f, 'utf8'), 'ghs_job');
      assert.equal(p.args[p.args.indexOf('--git-token-user') + 1], 'x-access-token');
      assert.equal(
        defaultGitContext({ GITHUB_REPOSITORY: 'o/r', GITHUB_SHA: 'abc', GITHUB_REF: 'refs/pull/7/merge' }),
        'https://github.com/o/r.git#refs/pull/7/merge',
      );
      // {{defaultContext}} with a subdirectory, as build-push-action's template allows.
      const sub = planAction(readInputs(getter({ context: '{{defaultContext}}:app' })), {
        env,
        work,
        temp: '/t',
      });
      assert.equal(sub.context, `https://github.com/o/r.git#${'f'.repeat(40)}:app`);
      // Without a repository (a local run) the default is the working directory.
      assert.equal(plan({}).context, '.');
    }));

  test('push defaults to false; push without tags is an error naming both', () => {
    assert.ok(plan({ context: '.' }).args.includes('--no-push=true'));
    assert.throws(() => plan({ push: 'true', context: '.' }), /input push is true but tags is empty/);
  });

  test('outputs: exporter attributes', () => {
    assert.deepEqual(parseAttrs('user/app:cache'), { type: 'registry', ref: 'user/app:cache' });
    assert.deepEqual(parseAttrs('type=oci,dest=/x.tar'), { type: 'oci', dest: '/x.tar' });
    assert.equal(exportPlan(false, false, ['type=registry']).push, true);
    assert.equal(exportPlan(false, false, ['type=image,name=x,push=true']).push, true);
    assert.equal(exportPlan(false, false, ['type=image,push=false']).push, false);
    assert.deepEqual(exportPlan(false, false, ['type=oci,dest=/l,tar=false']).ociLayoutDir, '/l');
    assert.deepEqual(exportPlan(false, false, ['type=oci,dest=/l.tar']).ociTarball, '/l.tar');
    assert.equal(exportPlan(false, false, ['type=docker']).load, true);
    assert.throws(() => exportPlan(false, false, ['type=local,dest=out']), /input outputs: type=local/);
    assert.throws(() => exportPlan(false, false, ['type=tar,dest=out.tar']), /input outputs: type=tar/);
    assert.throws(() => exportPlan(false, false, ['type=docker,dest=-']), /stdout/);
    const p = plan({ tags: 'r/a:1', outputs: 'type=oci,dest=/o/img.tar' });
    assert.ok(p.ociLayoutTemp && p.args.includes(p.ociLayoutTemp));
    assert.ok(p.args.includes('type=provenance,mode=min'), 'an OCI export gets the default provenance');
    const d = plan({ tags: 'r/a:1', push: 'true', load: 'true' });
    assert.ok(!d.args.includes('--attest'), 'no default provenance with the docker exporter');
  });

  test('default provenance: mode=max for a public repository, none with BUILDX_NO_DEFAULT_ATTESTATIONS', () =>
    withWork((work) => {
      const ev = join(work, 'event.json');
      writeFileSync(ev, JSON.stringify({ repository: { private: false } }));
      const p = planAction(readInputs(getter({ tags: 'r/a:1', push: 'true', context: '.' })), {
        env: { GITHUB_EVENT_PATH: ev },
        work,
        temp: '/t',
      });
      assert.ok(p.args.includes('type=provenance,mode=max'));
      const q = planAction(readInputs(getter({ tags: 'r/a:1', push: 'true', context: '.' })), {
        env: { BUILDX_NO_DEFAULT_ATTESTATIONS: '1' },
        work,
        temp: '/t',
      });
      assert.ok(!q.args.includes('--attest'));
      const f = planAction(
        readInputs(getter({ tags: 'r/a:1', push: 'true', provenance: 'false', context: '.' })),
        { env: {}, work, temp: '/t' },
      );
      assert.ok(!f.args.includes('--attest'));
    }));

  test('several platforms: the default provenance applies as for one (each platform gets its own), no warning', () => {
    const multi = { tags: 'r/a:1', push: 'true', platforms: 'linux/amd64,linux/arm64', context: '.' };
    const p = plan(multi);
    assert.ok(p.args.includes('type=provenance,mode=min'), p.args.join(' '));
    assert.ok(p.args.includes('linux/amd64,linux/arm64'), p.args.join(' '));
    assert.ok(!p.reports.some((r) => r.input === 'provenance'), JSON.stringify(p.reports));
    const asked = plan({ ...multi, provenance: 'mode=max', sbom: 'true' });
    assert.ok(asked.args.includes('type=provenance,mode=max'));
    assert.ok(asked.args.includes('type=sbom'));
    assert.ok(!asked.reports.some((r) => r.input === 'provenance' || r.input === 'sbom'));
    const off = plan({ ...multi, provenance: 'false' });
    assert.ok(!off.args.includes('--attest'), off.args.join(' '));
  });

  test('cache-from / cache-to', () => {
    const c = cachePlan(
      ['type=gha,scope=app', 'type=registry,ref=r/app:cache'],
      ['type=gha,scope=app,mode=max'],
    );
    assert.deepEqual(c.gha, { scope: 'app', restore: true, save: true });
    assert.deepEqual(c.registry, { ref: 'r/app', push: false });
    assert.deepEqual(cachePlan([], ['type=registry,ref=r/app:c,mode=min']).notes.length, 1);
    assert.throws(() => cachePlan(['type=s3,bucket=b'], []), /cache type "s3" is not supported/);
    assert.throws(
      () => cachePlan(['type=registry,ref=a/x'], ['type=registry,ref=b/y']),
      /two cache repositories/,
    );
    const p = plan({
      'cache-from': 'type=local,src=/c/in',
      'cache-to': 'type=local,dest=/c/out',
      context: '.',
    });
    assert.equal(p.cache.dir, '/c/out');
    assert.equal(p.cache.seedFrom, '/c/in');
    assert.ok(p.args.includes('--cache-dir') && p.args.includes('/c/out'));
    const g = plan({ 'cache-from': 'type=gha', 'cache-to': 'type=gha,mode=max', context: '.' });
    assert.equal(g.cache.dir, '/t/kiln-cache-buildkit');
    assert.deepEqual(g.cache.gha, { prefix: 'kiln-buildkit', restore: true, save: true });
    const r = plan({ 'cache-from': 'r/app:cache', context: '.' });
    assert.ok(r.args.includes('--no-push-cache=true'), 'cache-from alone only reads the repository');
  });

  test('buildah-build compatibility: image + tags as words, oci', () => {
    const i = readInputs(getter({ image: 'r.example/app', tags: 'v1 latest', oci: 'false' }));
    assert.deepEqual(i.tags, ['r.example/app:v1', 'r.example/app:latest']);
    assert.deepEqual(readInputs(getter({ image: 'r.example/app' })).tags, ['r.example/app:latest']);
    assert.ok(plan({ image: 'r/app', oci: 'false', context: '.' }).args.includes('docker'));
    assert.deepEqual(readInputs(getter({ 'extra-args': `--label 'a=b c'` })).extraArgs, ['--label', 'a=b c']);
  });

  test('bad values name their input', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ 'build-args': 'A=1\nNOVALUE' }, /build-args: item 2 "NOVALUE"/],
      [{ platforms: 'amd64' }, /input platforms: "amd64" is not os\/arch/],
      [{ push: 'yes' }, /input push is "yes"/],
      [{ isolation: 'docker' }, /isolation "docker"/],
      [{ 'extra-args': '--a "b' }, /unterminated/],
      [{ 'secret-envs': 'x=not a var' }, /input secret-envs: item 1/],
    ];
    for (const [m, re] of bad)
      assert.throws(
        () => plan(m),
        (e: unknown) => e instanceof KilnError && e.category === 'usage' && re.test(e.message),
      );
  });
});

describe('credentials and the child environment', () => {
  test('no INPUT_* or service token reaches kiln; the password is in a 0600 file, not a variable', () =>
    withWork((work) => {
      const env = childEnv(
        { registry: '', username: 'u', password: 'pw-123', tags: ['r.example/a:1'], sign: false },
        {
          PATH: '/bin',
          INPUT_PASSWORD: 'pw-123',
          'INPUT_GITHUB-TOKEN': 't',
          ACTIONS_RUNTIME_TOKEN: 'rt',
          GITHUB_TOKEN: 'gt',
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'oidc',
          GITHUB_SHA: 's',
        },
        work,
      );
      assert.deepEqual(Object.keys(env).sort(), [
        'GITHUB_SHA',
        'KILN_REGISTRY',
        'KILN_REGISTRY_PASSWORD_FILE',
        'KILN_REGISTRY_USERNAME',
        'PATH',
      ]);
      assert.ok(!Object.values(env).includes('pw-123'));
      assert.equal(env.KILN_REGISTRY, 'r.example');
      assert.equal(statSync(env.KILN_REGISTRY_PASSWORD_FILE!).mode & 0o777, 0o600);
      // kiln's side: read once, variable unset, file removed.
      const e2: NodeJS.ProcessEnv = { ...env };
      assert.deepEqual(envCredentials(e2), [{ registry: 'r.example', username: 'u', password: 'pw-123' }]);
      assert.equal(e2.KILN_REGISTRY_PASSWORD_FILE, undefined);
      assert.throws(() => statSync(env.KILN_REGISTRY_PASSWORD_FILE!), /ENOENT/);
      assert.equal(takePasswordFile({}), undefined);
      assert.throws(
        () => takePasswordFile({ KILN_REGISTRY_PASSWORD_FILE: join(work, 'gone') }),
        /cannot read KILN_REGISTRY_PASSWORD_FILE/,
      );
      // sign: true keeps the OIDC request variables (keyless signing needs them).
      const s = childEnv(
        { registry: '', username: '', password: '', tags: [], sign: true },
        { ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'oidc' },
        work,
      );
      assert.equal(s.ACTIONS_ID_TOKEN_REQUEST_TOKEN, 'oidc');
    }));
});

describe('failure annotations', () => {
  test('the error block with its hint and the RUN output tail, masked, placed on file and line', () => {
    const stderr = [
      'info: step 2',
      'error: Dockerfile:3: RUN sh -c "echo $T; exit 3" failed (exit 3)',
      '  hint: last output:',
      '    using token s3cr3t-value',
      '    boom',
      'info: after',
    ].join('\n');
    const msg = redact(lastKilnError(stderr), ['s3cr3t-value']);
    assert.equal(
      msg,
      'Dockerfile:3: RUN sh -c "echo $T; exit 3" failed (exit 3)\nhint: last output:\n  using token ***\n  boom',
    );
    assert.deepEqual(placeOf(msg, '/ws/app/Dockerfile', '/ws'), { file: 'app/Dockerfile', startLine: 3 });
    assert.deepEqual(placeOf('input tags: bad', null, '/ws'), {});
    assert.equal(lastKilnError('boom\n'), 'boom');
  });
});

test('platforms with load: the push holds every platform, and a warning says docker load takes one', () =>
  withWork((work) => {
    const env = { GITHUB_REPOSITORY: 'o/r', GITHUB_SHA: 'a'.repeat(40), GITHUB_REF: 'refs/heads/main' };
    const m = { tags: 'r.example/app:1', context: '.', platforms: 'linux/amd64\nlinux/arm64', load: 'true' };
    const p = planAction(readInputs(getter(m)), { env, work, temp: '/t' });
    assert.ok(p.args.join(' ').includes('--platform linux/amd64,linux/arm64'), p.args.join(' '));
    const r = p.reports.find((x) => x.input === 'load');
    assert.equal(r?.level, 'warning');
    assert.match(r!.message, /only the runner's .* is loaded/);
  }));
