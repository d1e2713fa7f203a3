import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { addBuildFlags, parseSecretFlag, toBuildOptions } from '../../../src/cli/build-flags.ts';
import { cliSettings, compatNotes, readFlags } from '../../../src/cli/to-options.ts';
import type { BuildOptions } from '../../../src/options.ts';

function parse(args: string[], env: NodeJS.ProcessEnv = {}): BuildOptions {
  const c = addBuildFlags(new Command()).exitOverride();
  c.parse(args, { from: 'user' });
  return toBuildOptions(c.opts(), env);
}

const cases: Array<[string, string[], (o: BuildOptions) => unknown, unknown]> = [
  ['defaults: no push flag pushes', [], (o) => o.output.noPush, false],
  ['--no-push', ['--no-push'], (o) => o.output.noPush, true],
  ['--no-push=true', ['--no-push=true'], (o) => o.output.noPush, true],
  ['--no-push=false', ['--no-push=false'], (o) => o.output.noPush, false],
  ['--cache=true', ['--cache=true'], (o) => o.cache.enabled, true],
  ['--cache=false with cache dir', ['--cache=false', '--cache-dir', '/c'], (o) => o.cache.enabled, false],
  [
    '--cache-dir alone enables the cache',
    ['--cache-dir=/c'],
    (o) => [o.cache.enabled, o.cache.dir],
    [true, '/c'],
  ],
  ['-d repeatable', ['-d', 'a/b:1', '--destination=c/d:2'], (o) => o.output.destinations, ['a/b:1', 'c/d:2']],
  [
    '-c and -f',
    ['-c', 'ctx', '-f', 'Dockerfile.x'],
    (o) => [o.context, o.dockerfile],
    ['ctx', 'Dockerfile.x'],
  ],
  ['--build-arg k=v', ['--build-arg', 'A=1', '--build-arg=B=x=y'], (o) => o.buildArgs, { A: '1', B: 'x=y' }],
  [
    '--build-arg NAME from env',
    ['--build-arg', 'FROM_ENV', '--build-arg', 'MISSING'],
    (o) => o.buildArgs,
    { FROM_ENV: 'e' },
  ],
  ['--label', ['--label', 'a=b', '--label', 'c='], (o) => o.labels, { a: 'b', c: '' }],
  [
    '--insecure-registry repeatable',
    ['--insecure-registry', 'h1:5000', '--insecure-registry', 'h2'],
    (o) => o.registry.insecureRegistries,
    ['h1:5000', 'h2'],
  ],
  ['--skip-tls-verify', ['--skip-tls-verify'], (o) => o.registry.skipTlsVerify, true],
  [
    '--registry-certificate',
    ['--registry-certificate', 'r.io=/ca.pem'],
    (o) => o.registry.certificates,
    { 'r.io': '/ca.pem' },
  ],
  [
    '--registry-client-cert',
    ['--registry-client-cert', 'r.io=/c.pem,/k.pem'],
    (o) => o.registry.clientCerts,
    { 'r.io': { cert: '/c.pem', key: '/k.pem' } },
  ],
  [
    '--registry-map',
    ['--registry-map', 'index.docker.io=m1;m2'],
    (o) => o.registry.registryMap,
    { 'index.docker.io': ['m1', 'm2'] },
  ],
  ['--registry-mirror', ['--registry-mirror', 'mirror.gcr.io'], (o) => o.registry.mirrors, ['mirror.gcr.io']],
  [
    '--push-retry and --image-download-retry',
    ['--push-retry', '5', '--image-download-retry=2'],
    (o) => [o.registry.pushRetry, o.registry.pullRetry],
    [5, 2],
  ],
  ['--custom-platform', ['--custom-platform', 'linux/arm64/v8'], (o) => o.platforms, ['linux/arm64/v8']],
  ['--target', ['--target', 'build'], (o) => o.target, 'build'],
  [
    '--tar-path and digest files',
    [
      '--tar-path',
      't.tar',
      '--digest-file',
      'd',
      '--image-name-with-digest-file',
      'n',
      '--image-name-tag-with-digest-file',
      'nt',
    ],
    (o) => [
      o.output.tarPath,
      o.output.digestFile,
      o.output.imageNameWithDigestFile,
      o.output.imageNameTagWithDigestFile,
    ],
    ['t.tar', 'd', 'n', 'nt'],
  ],
  ['--oci-layout-path', ['--oci-layout-path', '/l'], (o) => o.output.ociLayoutPath, '/l'],
  ['--kaniko-dir maps to workDir', ['--kaniko-dir', '/k'], (o) => o.workDir, '/k'],
  ['--cache-ttl in hours', ['--cache-ttl', '6h'], (o) => o.cache.ttlHours, 6],
  ['--cache-ttl in minutes', ['--cache-ttl', '90m'], (o) => o.cache.ttlHours, 1.5],
  ['--reproducible', ['--reproducible'], (o) => o.reproducible, true],
  ['SOURCE_DATE_EPOCH is the timestamp', [], (o) => o.timestamp, undefined],
  ['--timestamp', ['--timestamp', '1700000000'], (o) => o.timestamp, 1700000000],
  [
    '--git options',
    ['--git', 'branch=main,single-branch=true'],
    (o) => [o.git.branch, o.git.recurseSubmodules],
    ['main', false],
  ],
  [
    'Kaniko flags kiln ignores are accepted',
    ['--use-new-run', '--force', '--compressed-caching=false'],
    (o) => o.output.noPush,
    false,
  ],
  ['--isolation', ['--isolation', 'plain'], (o) => o.isolation, 'plain'],
  ['--secret', ['--secret', 'id=npm,src=/run/npmrc'], (o) => o.secrets, [{ id: 'npm', src: '/run/npmrc' }]],
  [
    '--ignore-path repeatable',
    ['--ignore-path', '/var/mail', '--ignore-path', '/x'],
    (o) => o.ignorePaths,
    ['/var/mail', '/x'],
  ],
  [
    '--compression zstd',
    ['--compression', 'zstd', '--compression-level', '3'],
    (o) => [o.compression, o.compressionLevel],
    ['zstd', 3],
  ],
  ["compression level defaults to Kaniko's gzip BestSpeed", [], (o) => o.compressionLevel, 1],
  ['zstd without a level: 3', ['--compression', 'zstd'], (o) => o.compressionLevel, 3],
  [
    '--compression-level 0 means the default, as in Kaniko',
    ['--compression-level', '0'],
    (o) => o.compressionLevel,
    1,
  ],
  ['--compression-level 9', ['--compression-level', '9'], (o) => o.compressionLevel, 9],
];

for (const [name, args, get, want] of cases) {
  test(`flags: ${name}`, () => {
    assert.deepEqual(get(parse(args, { FROM_ENV: 'e' })), want);
  });
}

test('flags: SOURCE_DATE_EPOCH from the environment', () => {
  assert.equal(parse([], { SOURCE_DATE_EPOCH: '42' }).timestamp, 42);
});

test('flags: a bad boolean is a usage error', () => {
  assert.throws(() => parse(['--no-push=maybe']), /expected true or false/);
});

test('flags: --label without = is a usage error naming the flag', () => {
  assert.throws(
    () => parse(['--label', 'novalue']),
    (e: Error) => /--label "novalue" must be key=value/.test(e.message),
  );
});

test('flags: --secret forms', () => {
  assert.deepEqual(parseSecretFlag('id=tok,env=TOKEN'), { id: 'tok', env: 'TOKEN' });
  assert.deepEqual(parseSecretFlag('id=tok'), { id: 'tok', env: 'tok' });
  assert.throws(() => parseSecretFlag('src=/x'), /needs id=/);
});

function flags(args: string[]): ReturnType<typeof readFlags> {
  const c = addBuildFlags(new Command(), {}).exitOverride();
  c.parse(args, { from: 'user' });
  return readFlags(c.opts());
}

test('flags: -v, --log-format, --log-timestamp and --dry-run are settings of the command', () => {
  assert.deepEqual(cliSettings(flags([])), {
    dryRun: false,
    log: { level: 'info', format: 'text', timestamps: false },
    progress: { mode: 'auto', intervalMs: 5000 },
  });
  assert.deepEqual(cliSettings(flags(['-v', 'debug', '--log-format=json', '--log-timestamp', '--dry-run'])), {
    dryRun: true,
    log: { level: 'debug', format: 'json', timestamps: true },
    progress: { mode: 'auto', intervalMs: 5000 },
  });
});

test('flags: an ignored Kaniko flag warns once, naming itself and why', () => {
  assert.deepEqual(compatNotes(flags([])), []);
  const notes = compatNotes(flags(['--use-new-run', '--snapshot-mode=redo']));
  assert.equal(notes.length, 2, notes.join('\n'));
  assert.ok(
    notes.some((n) => /^--use-new-run is accepted for Kaniko compatibility and has no effect here: /.test(n)),
    notes.join('\n'),
  );
  // What kiln does anyway is no reason to warn.
  assert.deepEqual(compatNotes(flags(['--skip-unused-stages', '--snapshot-mode=full'])), []);
  assert.equal(compatNotes(flags(['--skip-unused-stages=false'])).length, 1);
});

test('flags: --progress is buildx’s name for the log format; an explicit --log-format wins', () => {
  const format = (args: string[]): string => cliSettings(flags(args)).log.format;
  assert.equal(format(['--progress=plain']), 'text');
  assert.equal(format(['--progress', 'tty']), 'color');
  assert.equal(format(['--progress=json']), 'json');
  assert.equal(format(['--progress=auto']), 'color');
  assert.equal(format(['--progress=plain', '--log-format=json']), 'json');
  assert.throws(() => format(['--progress=fancy']), /--progress "fancy"/);
});
