/**
 * The docs must not drift from the code: docs/*.yaml parse and carry the settings the README explains,
 * the kiln flags they pass are accepted by `kiln build`, every Kaniko executor flag is in the README's
 * migration table, and every flag named there is accepted by addBuildFlags (parse only).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { parse, parseAllDocuments } from 'yaml';
import { addBuildFlags } from '../../src/cli/build-flags.ts';
import { ignoredFlags } from '../../src/cli/flag-table.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (p: string): string => readFileSync(root + p, 'utf8');

type Obj = Record<string, unknown>;
const obj = (v: unknown, what: string): Obj => {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} is not a mapping`);
  return v as Obj;
};
const arr = (v: unknown, what: string): unknown[] => {
  assert.ok(Array.isArray(v), `${what} is not a list`);
  return v;
};
const byName = (list: unknown, what: string): Map<string, Obj> =>
  new Map(arr(list, what).map((x) => [String(obj(x, what).name), obj(x, what)]));

/** Parses `args` as `kiln build` flags (no action, no env); throws on an unknown flag or bad value. */
function parseBuildArgs(args: string[]): Command {
  const cmd = addBuildFlags(new Command(), {})
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  cmd.parse(args, { from: 'user' });
  return cmd;
}

/** Kaniko's executor flags (github.com/GoogleContainerTools/kaniko, cmd/executor/cmd/root.go). */
const KANIKO_FLAGS = [
  '--bucket',
  '--build-arg',
  '--cache',
  '--cache-copy-layers',
  '--cache-dir',
  '--cache-repo',
  '--cache-run-layers',
  '--cache-ttl',
  '--cleanup',
  '--compressed-caching',
  '--compression',
  '--compression-level',
  '--context',
  '--context-sub-path',
  '--credential-helpers',
  '--custom-platform',
  '--destination',
  '--digest-file',
  '--dockerfile',
  '--force',
  '--force-build-metadata',
  '--git',
  '--ignore-path',
  '--ignore-var-run',
  '--image-download-retry',
  '--image-fs-extract-retry',
  '--image-name-tag-with-digest-file',
  '--image-name-with-digest-file',
  '--insecure',
  '--insecure-pull',
  '--insecure-registry',
  '--kaniko-dir',
  '--label',
  '--log-format',
  '--log-timestamp',
  '--materialize',
  '--no-push',
  '--no-push-cache',
  '--oci-layout-path',
  '--preserve-context',
  '--push-ignore-immutable-tag-errors',
  '--push-retry',
  '--registry-certificate',
  '--registry-client-cert',
  '--registry-map',
  '--registry-mirror',
  '--reproducible',
  '--single-snapshot',
  '--skip-default-registry-fallback',
  '--skip-push-permission-check',
  '--skip-tls-verify',
  '--skip-tls-verify-pull',
  '--skip-tls-verify-registry',
  '--skip-unused-stages',
  '--snapshot-mode',
  '--tar-path',
  '--target',
  '--use-new-run',
  '--verbosity',
  '--whitelist-var-run',
  '--customPlatform',
  '--snapshotMode',
  '--tarPath',
];

/** The flags in the first column of the README's Kaniko table (`-c`, `--context`, ...). */
function kanikoTableFlags(): string[] {
  const readme = read('README.md');
  const start = readme.indexOf('## Migrating from Kaniko');
  assert.ok(start !== -1, 'README has a "## Migrating from Kaniko" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  const flags: string[] = [];
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `-')) continue;
    const first = line.split('|')[1] ?? '';
    for (const m of first.matchAll(/`(--?[A-Za-z][A-Za-z-]*)`/g)) flags.push(m[1]!);
  }
  return flags;
}

describe('README Kaniko → kiln flag table', () => {
  const flags = kanikoTableFlags();

  test('names every Kaniko executor flag', () => {
    const missing = KANIKO_FLAGS.filter((f) => !flags.includes(f));
    assert.deepEqual(missing, []);
    assert.ok(flags.includes('-c') && flags.includes('-f') && flags.includes('-d') && flags.includes('-v'));
  });

  test('has no duplicate rows', () => {
    const longs = flags.filter((f) => f.startsWith('--'));
    assert.deepEqual(
      longs.filter((f, i) => longs.indexOf(f) !== i),
      [],
    );
  });

  for (const flag of flags) {
    test(`kiln build accepts ${flag}`, () => {
      const probe = addBuildFlags(new Command(), {});
      const opt = probe.options.find((o) => o.long === flag || o.short === flag);
      assert.ok(opt, `${flag} is not a kiln build flag`);
      const args =
        opt.isBoolean() || (opt.optional && !opt.required) ? [flag] : [flag, opt.argChoices?.[0] ?? '1'];
      const cmd = parseBuildArgs(args);
      assert.equal(cmd.getOptionValueSource(opt.attributeName()), 'cli');
    });
  }

  test('an unknown flag is rejected (the check above can fail)', () => {
    assert.throws(() => parseBuildArgs(['--no-such-kaniko-flag']), /unknown option/);
  });
});

/** Flags in the first column of README table rows whose kiln column says "accepted, ignored". */
function readmeIgnoredFlags(): string[] {
  const flags: string[] = [];
  for (const line of read('README.md').split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (!line.startsWith('| `-') || !/^accepted, ignored/.test(cells[2] ?? '')) continue;
    for (const m of (cells[1] ?? '').matchAll(/`(--?[A-Za-z][A-Za-z-]*)`/g)) flags.push(m[1]!);
  }
  return flags.sort();
}

describe('README and the one list of ignored flags', () => {
  test('the README marks exactly the flags the flag table ignores as "accepted, ignored"', () => {
    const table = ignoredFlags()
      .flatMap((f) => [f.long, ...f.aliases])
      .sort();
    assert.ok(table.length >= 10, table.join(' '));
    assert.deepEqual(readmeIgnoredFlags(), table);
  });
});

describe('README workflow snippets', () => {
  const readme = read('README.md');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

  test('every yaml block parses', () => {
    assert.ok(blocks.length >= 2);
    for (const b of blocks) {
      for (const doc of parseAllDocuments(b)) assert.deepEqual(doc.errors, [], b);
    }
  });

  test('the GitHub quick start uses only inputs and outputs action.yml declares', () => {
    const action = obj(parse(read('action.yml')), 'action.yml');
    const inputs = Object.keys(obj(action.inputs, 'inputs'));
    const outputs = Object.keys(obj(action.outputs, 'outputs'));
    const wf = blocks.map((b) => parse(b) as unknown).find((d) => JSON.stringify(d).includes('/kiln@v1'));
    assert.ok(wf, 'a workflow using <owner>/kiln@v1');
    const steps = Object.values(obj(obj(wf, 'workflow').jobs, 'jobs')).flatMap((j) =>
      arr(obj(j, 'job').steps, 'steps').map((s) => obj(s, 'step')),
    );
    const kiln = steps.find((s) => String(s.uses).endsWith('/kiln@v1'))!;
    assert.ok(steps.some((s) => String(s.uses).startsWith('docker/login-action@')));
    const used = Object.keys(obj(kiln.with, 'with'));
    assert.ok(used.includes('cache') || used.includes('cache-from'), 'the quick start shows the layer cache');
    assert.deepEqual(
      used.filter((k) => !inputs.includes(k)),
      [],
    );
    const refs = [...JSON.stringify(steps).matchAll(/steps\.([\w-]+)\.outputs\.([\w-]+)/g)];
    assert.ok(refs.length > 0, 'a later step uses the outputs');
    for (const [, id, out] of refs) {
      assert.equal(id, kiln.id);
      assert.ok(outputs.includes(out!), `output ${out} is in action.yml`);
    }
  });

  test('the GitLab quick start uses only inputs the component declares, and KILN_IMAGE_DIGEST', () => {
    const spec = parseAllDocuments(read('templates/build.yml'))[0]!.toJS() as Obj;
    const inputs = Object.keys(obj(obj(spec.spec, 'spec').inputs, 'inputs'));
    const ci = blocks.map((b) => parse(b) as unknown).find((d) => JSON.stringify(d).includes('component'));
    assert.ok(ci, 'a .gitlab-ci.yml with include: component');
    const inc = arr(obj(ci, 'ci').include, 'include').map((i) => obj(i, 'include'))[0]!;
    assert.match(String(inc.component), /\/kiln\/build@/);
    const used = Object.keys(obj(inc.inputs, 'inputs'));
    assert.deepEqual(
      used.filter((k) => !inputs.includes(k)),
      [],
    );
    assert.match(JSON.stringify(ci), /needs.*kiln-build[\s\S]*KILN_IMAGE_DIGEST/);
  });
});

describe('docs/kubernetes-job.yaml', () => {
  const job = obj(parse(read('docs/kubernetes-job.yaml')), 'job');
  const pod = obj(obj(obj(job.spec, 'spec').template, 'template').spec, 'pod spec');
  const container = obj(arr(pod.containers, 'containers')[0], 'container');
  const sc = obj(container.securityContext, 'securityContext');

  test('is a non-root Job with user-namespace friendly profiles and minimal capabilities', () => {
    assert.equal(job.apiVersion, 'batch/v1');
    assert.equal(job.kind, 'Job');
    const psc = obj(pod.securityContext, 'pod securityContext');
    assert.equal(psc.runAsNonRoot, true);
    assert.ok(Number(psc.runAsUser) > 0);
    assert.equal(sc.runAsNonRoot, true);
    assert.equal(sc.privileged, false);
    assert.equal(sc.allowPrivilegeEscalation, true, 'newuidmap is setuid');
    assert.deepEqual(obj(sc.seccompProfile, 'seccomp'), { type: 'Unconfined' });
    assert.deepEqual(obj(sc.appArmorProfile, 'apparmor'), { type: 'Unconfined' });
    const caps = obj(sc.capabilities, 'capabilities');
    assert.deepEqual(caps.drop, ['ALL']);
    assert.deepEqual(caps.add, ['SETUID', 'SETGID']);
  });

  test('mounts the registry secret as DOCKER_CONFIG and emptyDirs for work and cache', () => {
    const env = byName(container.env, 'env');
    const dockerConfig = String(env.get('DOCKER_CONFIG')?.value);
    const mounts = byName(container.volumeMounts, 'volumeMounts');
    const volumes = byName(pod.volumes, 'volumes');
    const cfg = [...mounts.values()].find((m) => m.mountPath === dockerConfig);
    assert.ok(cfg, 'a volume is mounted at $DOCKER_CONFIG');
    const secret = obj(volumes.get(String(cfg.name))?.secret, 'secret volume');
    assert.deepEqual(arr(secret.items, 'items')[0], { key: '.dockerconfigjson', path: 'config.json' });
    const args = arr(container.args, 'args').map(String);
    for (const flag of ['--work-dir', '--cache-dir']) {
      const dir = args.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
      const m = [...mounts.values()].find((x) => x.mountPath === dir);
      assert.ok(m, `${flag} is a mounted volume`);
      assert.deepEqual(volumes.get(String(m.name))?.emptyDir, {});
    }
    assert.ok(args.some((a) => /^--context=git:\/\//.test(a)));
  });

  test('its kiln arguments are accepted by kiln build', () => {
    const args = arr(container.args, 'args').map(String);
    assert.equal(args[0], 'build');
    parseBuildArgs(args.slice(1));
  });
});

describe('docs/tekton-task.yaml', () => {
  const task = obj(parse(read('docs/tekton-task.yaml')), 'task');
  const spec = obj(task.spec, 'spec');
  const step = obj(arr(spec.steps, 'steps')[0], 'step');
  const args = arr(step.args, 'args').map(String);

  test('has the kaniko catalog params, workspaces and results', () => {
    assert.equal(task.apiVersion, 'tekton.dev/v1');
    assert.equal(task.kind, 'Task');
    const params = byName(spec.params, 'params');
    for (const p of ['IMAGE', 'DOCKERFILE', 'CONTEXT', 'EXTRA_ARGS']) assert.ok(params.has(p), p);
    assert.equal(params.get('EXTRA_ARGS')!.type, 'array');
    const ws = byName(spec.workspaces, 'workspaces');
    assert.ok(ws.has('source'));
    assert.equal(ws.get('dockerconfig')?.optional, true);
    assert.deepEqual([...byName(spec.results, 'results').keys()].sort(), ['IMAGE_DIGEST', 'IMAGE_URL']);
  });

  test('writes the results with --digest-file and --image-name-with-digest-file', () => {
    assert.ok(args.includes('--digest-file=$(results.IMAGE_DIGEST.path)'));
    assert.ok(args.includes('--image-name-with-digest-file=$(results.IMAGE_URL.path)'));
    assert.ok(args.includes('--destination=$(params.IMAGE)'));
    assert.ok(args.includes('$(params.EXTRA_ARGS[*])'));
    const env = byName(step.env, 'env');
    assert.equal(env.get('DOCKER_CONFIG')?.value, '$(workspaces.dockerconfig.path)');
  });

  test('its kiln arguments are accepted by kiln build', () => {
    assert.equal(args[0], 'build');
    parseBuildArgs(args.slice(1).filter((a) => !a.startsWith('$(params.EXTRA_ARGS')));
  });
});
