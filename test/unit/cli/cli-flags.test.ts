/**
 * Kaniko flag compatibility, KILN_<FLAG> environment equivalents, unknown-flag suggestions and
 * --help contents of the real `kiln` CLI.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import {
  addBuildFlags,
  applyEnvFlags,
  envNameOf,
  splitEnvList,
  toBuildOptions,
} from '../../../src/cli/build-flags.ts';
import { readFlags } from '../../../src/cli/to-options.ts';
import type { BuildOptions } from '../../../src/options.ts';
import { isKilnError } from '../../../src/util/errors.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Parses like `kiln build` does (the preAction hook applies env), without building. */
function parse(args: string[], env: NodeJS.ProcessEnv = {}): BuildOptions {
  let opts: BuildOptions | undefined;
  const c = addBuildFlags(new Command(), env).exitOverride();
  c.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  c.action((o: Record<string, unknown>) => {
    opts = toBuildOptions(o, env);
  });
  c.parse(args, { from: 'user' });
  assert.ok(opts);
  return opts;
}

function kiln(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Kaniko executor flags with a value each accepts (cmd/executor/cmd/root.go, incl. deprecated ones). */
const KANIKO_FLAGS: Array<[string, string[]]> = [
  ['--dockerfile', ['--dockerfile', 'Dockerfile.x']],
  ['-f', ['-f', 'Dockerfile.x']],
  ['--context', ['--context', 'dir:///workspace']],
  ['-c', ['-c', '/workspace']],
  ['--context-sub-path', ['--context-sub-path', 'sub']],
  ['--bucket (parse only)', ['--bucket', 'b']],
  ['--destination', ['--destination', 'r.io/a:1']],
  ['-d', ['-d', 'r.io/a:1']],
  ['--snapshot-mode', ['--snapshot-mode', 'redo']],
  ['--custom-platform', ['--custom-platform', 'linux/arm64']],
  ['--build-arg', ['--build-arg', 'A=1']],
  ['--insecure', ['--insecure']],
  ['--skip-tls-verify', ['--skip-tls-verify']],
  ['--insecure-pull', ['--insecure-pull']],
  ['--skip-tls-verify-pull', ['--skip-tls-verify-pull']],
  ['--push-retry', ['--push-retry', '2']],
  ['--image-fs-extract-retry', ['--image-fs-extract-retry', '2']],
  ['--image-download-retry', ['--image-download-retry', '2']],
  ['--kaniko-dir', ['--kaniko-dir', '/kaniko']],
  ['--tar-path', ['--tar-path', 'i.tar']],
  ['--single-snapshot', ['--single-snapshot']],
  ['--reproducible', ['--reproducible']],
  ['--target', ['--target', 'build']],
  ['--no-push', ['--no-push']],
  ['--no-push-cache', ['--no-push-cache']],
  ['--cache-repo', ['--cache-repo', 'r.io/cache']],
  ['--cache-dir', ['--cache-dir', '/cache']],
  ['--digest-file', ['--digest-file', 'd']],
  ['--image-name-with-digest-file', ['--image-name-with-digest-file', 'n']],
  ['--image-name-tag-with-digest-file', ['--image-name-tag-with-digest-file', 't']],
  ['--oci-layout-path', ['--oci-layout-path', 'o']],
  ['--cache', ['--cache=true']],
  ['--compressed-caching', ['--compressed-caching=false']],
  ['--cleanup', ['--cleanup']],
  ['--cache-ttl', ['--cache-ttl', '6h']],
  ['--insecure-registry', ['--insecure-registry', 'r.io']],
  ['--skip-tls-verify-registry', ['--skip-tls-verify-registry', 'r.io']],
  ['--registry-certificate', ['--registry-certificate', 'r.io=/ca.pem']],
  ['--registry-client-cert', ['--registry-client-cert', 'r.io=/c.pem,/k.pem']],
  ['--registry-mirror', ['--registry-mirror', 'mirror.gcr.io']],
  ['--registry-map', ['--registry-map', 'index.docker.io=m.io']],
  ['--skip-default-registry-fallback', ['--skip-default-registry-fallback']],
  ['--ignore-var-run', ['--ignore-var-run=false']],
  ['--whitelist-var-run', ['--whitelist-var-run=false']],
  ['--label', ['--label', 'a=b']],
  ['--skip-unused-stages', ['--skip-unused-stages']],
  ['--use-new-run', ['--use-new-run']],
  ['--git', ['--git', 'branch=main,single-branch=true']],
  ['--cache-copy-layers', ['--cache-copy-layers']],
  ['--cache-run-layers', ['--cache-run-layers=false']],
  ['--ignore-path', ['--ignore-path', '/var/mail']],
  ['--force-build-metadata', ['--force-build-metadata']],
  ['--force', ['--force']],
  ['--verbosity', ['--verbosity', 'debug']],
  ['-v', ['-v', 'warn']],
  ['--log-format', ['--log-format', 'json']],
  ['--log-timestamp', ['--log-timestamp']],
  ['--compression', ['--compression', 'zstd']],
  ['--compression-level', ['--compression-level', '3']],
  ['--push-ignore-immutable-tag-errors', ['--push-ignore-immutable-tag-errors']],
  ['--skip-push-permission-check', ['--skip-push-permission-check']],
  ['--credential-helpers', ['--credential-helpers', 'ecr-login']],
  ['--preserve-context', ['--preserve-context']],
  ['--materialize', ['--materialize']],
  ['--snapshotMode (deprecated)', ['--snapshotMode', 'time']],
  ['--customPlatform (deprecated)', ['--customPlatform', 'linux/arm64']],
  ['--tarPath (deprecated)', ['--tarPath', 'i.tar']],
  ['--storage-driver (Kimia)', ['--storage-driver', 'overlay']],
];

describe('every Kaniko executor flag parses', () => {
  test('the list is long enough to mean something', () => assert.ok(KANIKO_FLAGS.length >= 45));
  for (const [name, args] of KANIKO_FLAGS) {
    test(name, () => {
      const c = addBuildFlags(new Command(), {}).exitOverride();
      c.configureOutput({ writeErr: () => {} });
      assert.doesNotThrow(() => c.parse(args, { from: 'user' }));
    });
  }
});

describe('aliases map to the flag they stand for', () => {
  const cases: Array<[string, string[], (o: BuildOptions) => unknown, unknown]> = [
    ['--tarPath', ['--tarPath', 'x.tar'], (o) => o.output.tarPath, 'x.tar'],
    ['--customPlatform', ['--customPlatform', 'linux/arm/v7'], (o) => o.platforms, ['linux/arm/v7']],
    ['--snapshotMode checks choices', ['--snapshotMode', 'bogus'], () => 'unreachable', 'throws'],
  ];
  for (const [name, args, get, want] of cases) {
    test(name, () => {
      if (want === 'throws') assert.throws(() => parse(args), /Allowed choices/);
      else assert.deepEqual(get(parse(args)), want);
    });
  }
  test('--snapshotMode', () => {
    const c = addBuildFlags(new Command(), {}).exitOverride();
    c.parse(['--snapshotMode', 'time'], { from: 'user' });
    assert.equal(readFlags(c.opts()).snapshotMode, 'time');
  });
  test('--bucket is refused with a usage error pointing at --context', () => {
    assert.throws(
      () => parse(['--bucket', 'b']),
      (e: unknown) => isKilnError(e) && e.category === 'usage' && /--context/.test(e.hint ?? ''),
    );
  });
});

describe('KILN_<FLAG> environment variables', () => {
  test('names', () => {
    assert.equal(envNameOf('--destination'), 'KILN_DESTINATION');
    assert.equal(envNameOf('--build-arg'), 'KILN_BUILD_ARG');
    assert.equal(envNameOf('--image-name-tag-with-digest-file'), 'KILN_IMAGE_NAME_TAG_WITH_DIGEST_FILE');
  });

  const cases: Array<[string, string[], NodeJS.ProcessEnv, (o: BuildOptions) => unknown, unknown]> = [
    [
      'repeatable, comma separated',
      [],
      { KILN_DESTINATION: 'r.io/a:1, r.io/a:latest' },
      (o) => o.output.destinations,
      ['r.io/a:1', 'r.io/a:latest'],
    ],
    [
      'repeatable, newline separated',
      [],
      { KILN_DESTINATION: 'r.io/a:1\nr.io/a:2\n' },
      (o) => o.output.destinations,
      ['r.io/a:1', 'r.io/a:2'],
    ],
    [
      'flag wins over env',
      ['-d', 'cli/x:1'],
      { KILN_DESTINATION: 'env/x:1' },
      (o) => o.output.destinations,
      ['cli/x:1'],
    ],
    [
      'build args keep commas inside values',
      [],
      { KILN_BUILD_ARG: 'A=1,B=x,y\nC=3' },
      (o) => o.buildArgs,
      { A: '1', B: 'x,y', C: '3' },
    ],
    ['scalar', [], { KILN_CACHE_DIR: '/c' }, (o) => [o.cache.enabled, o.cache.dir], [true, '/c']],
    ['scalar with a default', [], { KILN_CONTEXT: 'ctx' }, (o) => o.context, 'ctx'],
    [
      'flag wins over env for a defaulted scalar',
      ['-c', 'cli'],
      { KILN_CONTEXT: 'env' },
      (o) => o.context,
      'cli',
    ],
    ['boolean true', [], { KILN_NO_PUSH: 'true' }, (o) => o.output.noPush, true],
    ['boolean false', [], { KILN_NO_PUSH: 'false' }, (o) => o.output.noPush, false],
    ['boolean flag wins', ['--no-push=false'], { KILN_NO_PUSH: 'true' }, (o) => o.output.noPush, false],
    ['integer', [], { KILN_PUSH_RETRY: '7' }, (o) => o.registry.pushRetry, 7],
    ['choice', [], { KILN_ISOLATION: 'chroot' }, (o) => o.isolation, 'chroot'],
    [
      'secret is newline separated only',
      [],
      { KILN_SECRET: 'id=a,src=/a\nid=b,env=B' },
      (o) => o.secrets,
      [
        { id: 'a', src: '/a' },
        { id: 'b', env: 'B' },
      ],
    ],
    ['empty value is ignored', [], { KILN_TARGET: '' }, (o) => o.target, undefined],
    ['unrelated KILN_ variables are ignored', [], { KILN_REGISTRY: 'r.io' }, (o) => o.context, '.'],
  ];
  for (const [name, args, env, get, want] of cases) {
    test(name, () => assert.deepEqual(get(parse(args, env)), want));
  }

  for (const [name, env, re] of [
    ['bad choice', { KILN_ISOLATION: 'vm' }, /KILN_ISOLATION="vm": .*Allowed choices/],
    ['bad integer', { KILN_PUSH_RETRY: 'many' }, /KILN_PUSH_RETRY="many": expected a non-negative integer/],
    ['bad boolean', { KILN_NO_PUSH: 'maybe' }, /KILN_NO_PUSH="maybe": expected true or false/],
  ] as const) {
    test(`${name} is a usage error naming the variable`, () => {
      assert.throws(
        () => parse([], env),
        (e: unknown) => isKilnError(e) && e.category === 'usage' && re.test(e.message),
      );
    });
  }

  test('applyEnvFlags leaves hidden aliases alone', () => {
    const c = addBuildFlags(new Command(), {});
    c.parse([], { from: 'user' });
    applyEnvFlags(c, { KILN_TARPATH: 'x', KILN_BUCKET: 'b' });
    assert.equal(c.opts().tarPath, undefined);
    assert.equal(c.opts().bucket, undefined);
  });

  test('splitEnvList', () => {
    assert.deepEqual(splitEnvList('--ignore-path', '/a,b\n/c'), ['/a,b', '/c']);
    assert.deepEqual(splitEnvList('--label', 'a=1,2, b=3'), ['a=1,2', 'b=3']);
    assert.deepEqual(splitEnvList('--insecure-registry', 'h1,h2\r\nh3'), ['h1', 'h2', 'h3']);
  });
});

describe('the kiln CLI', () => {
  for (const [argv, suggestion] of [
    [['build', '--destnation', 'x'], '--destination'],
    [['build', '--cachedir', '/c'], '--cache-dir'],
    [['build', '--build-args', 'A=1'], '--build-arg'],
    [['plan', '--dockerfil', 'D'], '--dockerfile'],
    [['probe', '--isolaton', 'auto'], '--isolation'],
  ] as const) {
    test(`kiln ${argv.join(' ')}: exit 2 and "did you mean ${suggestion}"`, () => {
      const r = kiln([...argv]);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, new RegExp(`unknown option '${argv[1]}'`));
      assert.ok(r.err.includes(`(Did you mean ${suggestion}?)`), r.err);
      assert.equal(r.out, '');
    });
  }

  test('unknown command suggests the right one', () => {
    const r = kiln(['biuld']);
    assert.equal(r.code, 2);
    assert.ok(r.err.includes('(Did you mean build?)'), r.err);
  });

  test('kiln build --help lists every visible flag, grouped', () => {
    const r = kiln(['build', '--help']);
    assert.equal(r.code, 0, r.err);
    const c = addBuildFlags(new Command(), {});
    const visible = c.options.filter((o) => !o.hidden);
    assert.ok(visible.length >= 55);
    for (const o of visible) assert.ok(r.out.includes(o.long!), `${o.long} missing from --help`);
    for (const hidden of ['--tarPath', '--bucket', '--use-new-run', '--storage-driver'])
      assert.ok(!r.out.includes(hidden), `${hidden} should be hidden`);
    const headings = ['Input:', 'Output:', 'Registry:', 'Cache:', 'Image content:', 'Execution:', 'Logging:'];
    const at = headings.map((h) => r.out.indexOf(`\n${h}\n`));
    assert.ok(
      at.every((i) => i > 0),
      `headings ${JSON.stringify(at)}`,
    );
    assert.deepEqual(
      [...at].sort((a, b) => a - b),
      at,
    );
  });

  test('kiln --help lists the commands', () => {
    const r = kiln(['--help']);
    assert.equal(r.code, 0, r.err);
    for (const cmd of ['build', 'plan', 'probe']) assert.match(r.out, new RegExp(`^  ${cmd}\\b`, 'm'));
  });

  test('KILN_ env reaches kiln plan; a bad value exits 2', () => {
    const bad = kiln(['plan', '-c', 'test'], { KILN_NETWORK: 'bridge' });
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /KILN_NETWORK="bridge"/);
  });
});
