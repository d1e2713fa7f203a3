/**
 * Kaniko's executor flags (same names, same repeatable/`key=value` forms, `--flag=true|false` for
 * booleans) plus kiln's own, turned into one BuildOptions. Migration from Kaniko is a rename of the
 * binary; flags Kaniko accepts but kiln does not need are accepted and ignored with a note.
 */
import { Command, Option, InvalidArgumentError } from 'commander';
import {
  defaultBuildOptions,
  type BuildOptions,
  type IsolationChoice,
  type SecretSpec,
} from '../options.ts';
import type { RegistryCredential } from '../registry/options.ts';
import type { LogLevel } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

function parseBool(v: string | undefined): boolean {
  if (v === undefined) return true;
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new InvalidArgumentError(`expected true or false, got "${v}"`);
}

function parseIntArg(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`expected a non-negative integer, got "${v}"`);
  return Number(v);
}

/** Adds a Kaniko-style boolean: `--x`, `--x=true`, `--x=false`. */
function bool(cmd: Command, flags: string, description: string): void {
  const opt = new Option(`${flags} [bool]`, description).argParser(parseBool);
  // Kaniko's --no-push is a flag of its own (with =true/=false), not commander's negation of --push.
  opt.negate = false;
  cmd.addOption(opt);
}

function bools(cmd: Command, list: ReadonlyArray<readonly [string, string]>): void {
  for (const [flag, desc] of list) bool(cmd, flag, desc);
}

/**
 * Kaniko (and Kimia) flags accepted for compatibility that change nothing in kiln. Kimia's flags are
 * Kaniko's names (--insecure, --cache, --cache-dir, --skip-tls-verify, ...); the one it adds that kiln
 * has no use for is --storage-driver.
 */
const IGNORED_BOOLS = [
  'use-new-run',
  'force',
  'force-build-metadata',
  'ignore-var-run',
  'whitelist-var-run',
  'compressed-caching',
  'cache-copy-layers-ignored',
  'preserve-context',
  'materialize',
];
const IGNORED_VALUES = ['credential-helpers', 'storage-driver'];

/**
 * Kaniko's deprecated camelCase spellings, still accepted by its executor. Commander camel-cases
 * `--tar-path` to `tarPath` too, so an alias writes the same key as the flag it stands for.
 */
const CAMEL_ALIASES: ReadonlyArray<readonly [string, string]> = [
  ['--tarPath <file>', 'tar-path'],
  ['--customPlatform <os/arch[/variant]>', 'custom-platform'],
  ['--snapshotMode <mode>', 'snapshot-mode'],
];

/** Help headings, in the order `kiln build --help` shows them. */
export const FLAG_GROUPS = [
  'Input:',
  'Output:',
  'Registry:',
  'Cache:',
  'Image content:',
  'Execution:',
  'Logging:',
] as const;

export function addBuildFlags(cmd: Command, env: NodeJS.ProcessEnv = process.env): Command {
  cmd
    .optionsGroup('Input:')
    .option(
      '-c, --context <path>',
      'build context: dir, tar://file, .tar.gz, git://... or https://...git#ref:subdir',
      '.',
    )
    .option('--context-sub-path <path>', 'sub directory of the context to build')
    .option(
      '-f, --dockerfile <path>',
      'Dockerfile path (relative to the context unless it exists as given)',
      'Dockerfile',
    )
    .option('--target <stage>', 'stage to build')
    .option(
      '--build-arg <key=value>',
      'build arg (repeatable); KEY alone takes it from the environment',
      collect,
      [],
    )
    .option(
      '--secret <id=x,src=path|env=VAR>',
      'build secret for RUN --mount=type=secret (repeatable)',
      collect,
      [],
    )
    .option('--git <branch=x,single-branch=true,recurse-submodules=true>', 'git context options')
    .option('--platform <os/arch[/variant]>', 'target platform')
    .option('--custom-platform <os/arch[/variant]>', 'target platform (Kaniko name)');
  bools(cmd, [['--skip-unused-stages', 'build only the stages the target needs']]);

  cmd
    .optionsGroup('Output:')
    .option('-d, --destination <ref>', 'image reference to push (repeatable)', collect, []);
  bools(cmd, [['--no-push', 'build without pushing']]);
  cmd
    .option('--tar-path <file>', 'write a docker-archive tarball')
    .option('--oci-layout-path <dir>', 'write an OCI image layout')
    .option('--digest-file <file>', 'write the image digest')
    .option('--image-name-with-digest-file <file>', 'write repo@digest per destination')
    .option('--image-name-tag-with-digest-file <file>', 'write repo:tag@digest per destination')
    .addOption(
      new Option('--format <format>', 'manifest media types').choices(['oci', 'docker']).default('oci'),
    );

  cmd.optionsGroup('Registry:');
  bools(cmd, [
    ['--insecure', 'push over plain HTTP'],
    ['--insecure-pull', 'pull over plain HTTP'],
  ]);
  cmd.option('--insecure-registry <host>', 'registry reached over plain HTTP (repeatable)', collect, []);
  bools(cmd, [
    ['--skip-tls-verify', 'do not verify TLS when pushing'],
    ['--skip-tls-verify-pull', 'do not verify TLS when pulling'],
  ]);
  cmd
    .option(
      '--skip-tls-verify-registry <host>',
      'registry whose TLS certificate is not verified (repeatable)',
      collect,
      [],
    )
    .option('--registry-certificate <host=path>', 'CA bundle for a registry (repeatable)', collect, [])
    .option(
      '--registry-client-cert <host=cert,key>',
      'client certificate for a registry (repeatable)',
      collect,
      [],
    )
    .option('--registry-mirror <host>', 'mirror for docker.io pulls (repeatable)', collect, [])
    .option('--registry-map <orig=mirror[;mirror]>', 'mirrors for any registry (repeatable)', collect, []);
  bools(cmd, [['--skip-default-registry-fallback', 'fail instead of falling back from mirrors']]);
  cmd
    .option('--push-retry <n>', 'retries for each push request', parseIntArg, 3)
    .option('--image-download-retry <n>', 'retries for each pull request', parseIntArg, 3)
    .option('--image-fs-extract-retry <n>', 'accepted for Kaniko compatibility', parseIntArg, 0);
  bools(cmd, [
    ['--push-ignore-immutable-tag-errors', 'ignore errors pushing to immutable tags'],
    ['--skip-push-permission-check', 'skip the push permission check'],
  ]);

  cmd.optionsGroup('Cache:');
  bools(cmd, [['--cache', 'use the layer cache']]);
  cmd
    .option('--cache-dir <dir>', 'local layer cache directory')
    .option('--cache-repo <repo>', 'registry repository for cached layers')
    .option('--cache-ttl <duration>', 'cache entry lifetime, e.g. 336h', '336h');
  bools(cmd, [
    ['--cache-copy-layers', 'cache COPY layers'],
    ['--cache-run-layers', 'cache RUN layers'],
    ['--no-push-cache', 'do not push cache layers'],
  ]);

  cmd
    .optionsGroup('Image content:')
    .option('--label <key=value>', 'label added to the image (repeatable)', collect, [])
    .option('--annotation <key=value>', 'manifest annotation (repeatable)', collect, []);
  bools(cmd, [['--reproducible', 'strip timestamps for reproducible images']]);
  cmd
    .option('--timestamp <unix-seconds>', 'clamp file and image times to this (SOURCE_DATE_EPOCH)')
    .addOption(
      new Option('--compression <algo>', 'layer compression')
        .choices(['gzip', 'zstd', 'none'])
        .default('gzip'),
    )
    .option(
      '--compression-level <n>',
      "compression level; unset or <= 0 takes Kaniko's default (gzip 1, zstd 3)",
      parseIntArg,
    );
  bools(cmd, [['--single-snapshot', 'one layer for the whole stage']]);
  cmd
    .option('--ignore-path <path>', 'path never snapshotted (repeatable)', collect, [])
    .addOption(
      new Option('--snapshot-mode <mode>', 'accepted for Kaniko compatibility')
        .choices(['full', 'redo', 'time'])
        .default('full'),
    );

  cmd
    .optionsGroup('Execution:')
    .addOption(
      new Option('--isolation <mode>', 'sandbox for RUN')
        .choices(['auto', 'rootless', 'chroot', 'plain'])
        .default('auto'),
    )
    .addOption(
      new Option('--network <mode>', 'default RUN network')
        .choices(['default', 'none', 'host'])
        .default('default'),
    )
    .option('--work-dir <dir>', 'scratch directory')
    .option('--kaniko-dir <dir>', 'scratch directory (Kaniko name)');
  bools(cmd, [
    ['--cleanup', 'remove the work dir afterwards'],
    ['--dry-run', 'print the resolved plan and stop'],
  ]);

  cmd
    .optionsGroup('Logging:')
    .addOption(
      new Option('-v, --verbosity <level>', 'log level')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'panic', 'fatal'])
        .default('info'),
    )
    .addOption(
      new Option('--log-format <format>', 'log format').choices(['text', 'color', 'json']).default('text'),
    );
  bools(cmd, [['--log-timestamp', 'timestamps on log lines']]);

  // Hidden: Kaniko's camelCase spellings, and flags kiln accepts but does not need.
  for (const [flags, target] of CAMEL_ALIASES) {
    const of = cmd.options.find((o) => o.long === `--${target}`);
    const alias = new Option(flags).hideHelp();
    if (of?.argChoices) alias.choices(of.argChoices);
    cmd.addOption(alias);
  }
  cmd.addOption(new Option('-b, --bucket <name>', 'GCS bucket holding the context tarball').hideHelp());
  for (const name of IGNORED_BOOLS)
    cmd.addOption(new Option(`--${name} [bool]`).hideHelp().argParser(parseBool));
  for (const name of IGNORED_VALUES)
    cmd.addOption(new Option(`--${name} <value>`).hideHelp().argParser(collect).default([]));
  cmd.optionsGroup('Options:');

  // KILN_<FLAG> environment variables fill in what argv did not give, for every subcommand using these.
  cmd.hook('preAction', (thisCommand) => applyEnvFlags(thisCommand, env));
  return cmd;
}

/** `--build-arg` → `KILN_BUILD_ARG`. */
export function envNameOf(long: string): string {
  return `KILN_${long.replace(/^--/, '').replace(/-/g, '_').toUpperCase()}`;
}

/** Repeatable flags whose values contain commas themselves: only newlines separate them in env. */
const NEWLINE_ONLY = new Set(['--secret', '--registry-client-cert', '--ignore-path']);
/** key=value flags: a comma separates items only when `key=` follows it, so `A=x,y` stays one. */
const KEY_VALUE = new Set([
  '--build-arg',
  '--label',
  '--annotation',
  '--registry-certificate',
  '--registry-map',
]);

export function splitEnvList(long: string, value: string): string[] {
  const lines = value.split(/\r?\n/);
  const parts = NEWLINE_ONLY.has(long)
    ? lines
    : KEY_VALUE.has(long)
      ? lines.flatMap((l) => l.split(/,(?=\s*[^,=\s]+=)/))
      : lines.flatMap((l) => l.split(','));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

/**
 * Every visible flag of `cmd` can be given as KILN_<FLAG_NAME> (e.g. KILN_DESTINATION, KILN_NO_PUSH=true);
 * a flag given on the command line wins. Repeatable flags take a newline- or comma-separated list.
 */
export function applyEnvFlags(cmd: Command, env: NodeJS.ProcessEnv): void {
  const seen = new Set<string>();
  for (const option of cmd.options) {
    if (option.hidden || !option.long) continue;
    const key = option.attributeName();
    if (seen.has(key)) continue;
    seen.add(key);
    const name = envNameOf(option.long);
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') continue;
    const source = cmd.getOptionValueSource(key);
    if (source !== undefined && source !== 'default') continue;
    let value: unknown;
    try {
      if (Array.isArray(option.defaultValue)) {
        let acc: unknown = [];
        for (const part of splitEnvList(option.long, raw))
          acc = option.parseArg ? option.parseArg(part, acc) : part;
        value = acc;
      } else if (option.isBoolean()) {
        value = parseBool(raw.trim());
      } else {
        value = option.parseArg ? option.parseArg(raw.trim(), undefined) : raw.trim();
      }
    } catch (e) {
      throw new KilnError(
        'usage',
        'BAD_ENV',
        `${name}="${raw}": ${e instanceof Error ? e.message : String(e)}`,
        {
          hint: `fix ${name} or pass ${option.long} on the command line`,
          cause: e,
        },
      );
    }
    cmd.setOptionValueWithSource(key, value, 'env');
  }
}

function keyValues(
  list: string[],
  flag: string,
  env: NodeJS.ProcessEnv,
  fromEnv = false,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq === -1) {
      if (fromEnv) {
        // Kaniko and docker: `--build-arg NAME` takes NAME from the environment, if set.
        if (env[item] !== undefined) out[item] = env[item];
        continue;
      }
      throw new KilnError('usage', 'BAD_FLAG_VALUE', `--${flag} "${item}" must be key=value`, {
        hint: `write --${flag} key=value`,
      });
    }
    if (eq === 0) throw new KilnError('usage', 'BAD_FLAG_VALUE', `--${flag} "${item}" has an empty key`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

export function parseSecretFlag(text: string): SecretSpec {
  const spec: Partial<SecretSpec> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const k = eq === -1 ? part : part.slice(0, eq);
    const v = eq === -1 ? '' : part.slice(eq + 1);
    if (k === 'id') spec.id = v;
    else if (k === 'src' || k === 'source') spec.src = v;
    else if (k === 'env') spec.env = v;
    else if (k === 'type') continue;
    else
      throw new KilnError('usage', 'BAD_FLAG_VALUE', `--secret: unknown key "${k}"`, {
        hint: 'write --secret id=<id>,src=<file> or --secret id=<id>,env=<VAR>',
      });
  }
  if (!spec.id)
    throw new KilnError('usage', 'BAD_FLAG_VALUE', '--secret needs id=<id>', {
      hint: 'write --secret id=<id>,src=<file>',
    });
  if (!spec.src && !spec.env) spec.env = spec.id;
  return spec as SecretSpec;
}

function parseDurationHours(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(h|m|s)?$/.exec(v);
  if (!m)
    throw new KilnError('usage', 'BAD_FLAG_VALUE', `--cache-ttl "${v}" is not a duration`, {
      hint: 'write e.g. --cache-ttl 336h',
    });
  const n = Number(m[1]);
  return m[2] === 'm' ? n / 60 : m[2] === 's' ? n / 3600 : n;
}

/**
 * Explicit registry credentials from KILN_REGISTRY_USERNAME / KILN_REGISTRY_PASSWORD for the host in
 * KILN_REGISTRY (default docker.io). CI adapters use these instead of a flag so the password is never
 * in argv (and so never in the process list).
 */
export function envCredentials(env: NodeJS.ProcessEnv): RegistryCredential[] {
  const username = env.KILN_REGISTRY_USERNAME ?? '';
  const password = env.KILN_REGISTRY_PASSWORD ?? '';
  if (username === '' && password === '') return [];
  if (username === '' || password === '')
    throw new KilnError(
      'usage',
      'BAD_CREDENTIALS',
      `KILN_REGISTRY_${username === '' ? 'USERNAME' : 'PASSWORD'} is empty but KILN_REGISTRY_${username === '' ? 'PASSWORD' : 'USERNAME'} is set`,
      { hint: 'set both KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD, or neither' },
    );
  const registry = (env.KILN_REGISTRY ?? '').trim() || 'docker.io';
  return [{ registry, username, password }];
}

/** commander's parsed values → BuildOptions (no I/O apart from reading env for `--build-arg NAME`). */
export function toBuildOptions(
  o: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): BuildOptions {
  const s = (k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const b = (k: string, dflt = false): boolean => (o[k] === undefined ? dflt : Boolean(o[k]));
  const l = (k: string): string[] => (Array.isArray(o[k]) ? (o[k] as string[]) : []);
  const d = defaultBuildOptions();
  if (s('bucket'))
    throw new KilnError(
      'usage',
      'UNSUPPORTED_FLAG',
      '--bucket (a GCS bucket as the build context) is not supported',
      {
        hint: 'download the context tarball and pass --context tar://<file>',
      },
    );
  const certificates = keyValues(l('registryCertificate'), 'registry-certificate', env);
  const clientCerts: BuildOptions['registry']['clientCerts'] = {};
  for (const [host, v] of Object.entries(keyValues(l('registryClientCert'), 'registry-client-cert', env))) {
    const [cert, key] = v.split(',');
    if (!cert || !key)
      throw new KilnError('usage', 'BAD_FLAG_VALUE', `--registry-client-cert ${host}=${v}: expected host=cert,key`);
    clientCerts[host] = { cert, key };
  }
  const registryMap: Record<string, string[]> = {};
  for (const [host, v] of Object.entries(keyValues(l('registryMap'), 'registry-map', env))) {
    registryMap[host] = [...(registryMap[host] ?? []), ...v.split(';').filter(Boolean)];
  }
  let timestamp: number | undefined;
  const ts = s('timestamp') ?? env.SOURCE_DATE_EPOCH;
  if (ts !== undefined && ts !== '') {
    if (!/^\d+$/.test(ts))
      throw new KilnError('usage', 'BAD_FLAG_VALUE', `--timestamp "${ts}" must be unix seconds`);
    timestamp = Number(ts);
  }
  const git: BuildOptions['git'] = { ...d.git };
  if (s('git')) {
    for (const [k, v] of Object.entries(keyValues(s('git')!.split(','), 'git', env))) {
      if (k === 'branch') git.branch = v;
      else if (k === 'single-branch') git.singleBranch = parseBool(v);
      else if (k === 'recurse-submodules') git.recurseSubmodules = parseBool(v);
      else if (k === 'insecure-skip-tls') git.insecureSkipTls = parseBool(v);
      else
        throw new KilnError('usage', 'BAD_FLAG_VALUE', `--git: unknown key "${k}"`, {
          hint: 'keys are branch, single-branch, recurse-submodules, insecure-skip-tls',
        });
    }
  }
  const credentials = envCredentials(env);
  const cacheDir = s('cacheDir');
  const cacheRepo = s('cacheRepo');
  const platform = s('platform') ?? s('customPlatform');
  return defaultBuildOptions({
    context: s('context') ?? '.',
    ...(s('contextSubPath') ? { contextSubPath: s('contextSubPath')! } : {}),
    dockerfile: s('dockerfile') ?? 'Dockerfile',
    ...(s('target') ? { target: s('target')! } : {}),
    buildArgs: keyValues(l('buildArg'), 'build-arg', env, true),
    labels: keyValues(l('label'), 'label', env),
    annotations: keyValues(l('annotation'), 'annotation', env),
    ...(platform ? { platform } : {}),
    isolation: (s('isolation') ?? 'auto') as IsolationChoice,
    secrets: l('secret').map(parseSecretFlag),
    network: (s('network') ?? 'default') as BuildOptions['network'],
    output: {
      destinations: l('destination'),
      noPush: b('noPush'),
      ...(s('tarPath') ? { tarPath: s('tarPath')! } : {}),
      ...(s('ociLayoutPath') ? { ociLayoutPath: s('ociLayoutPath')! } : {}),
      ...(s('digestFile') ? { digestFile: s('digestFile')! } : {}),
      ...(s('imageNameWithDigestFile') ? { imageNameWithDigestFile: s('imageNameWithDigestFile')! } : {}),
      ...(s('imageNameTagWithDigestFile')
        ? { imageNameTagWithDigestFile: s('imageNameTagWithDigestFile')! }
        : {}),
      format: (s('format') ?? 'oci') as 'oci' | 'docker',
    },
    registry: {
      ...d.registry,
      insecure: b('insecure'),
      insecurePull: b('insecurePull'),
      insecureRegistries: l('insecureRegistry'),
      skipTlsVerify: b('skipTlsVerify'),
      skipTlsVerifyPull: b('skipTlsVerifyPull'),
      skipTlsVerifyRegistries: l('skipTlsVerifyRegistry'),
      certificates,
      clientCerts,
      mirrors: l('registryMirror'),
      registryMap,
      skipDefaultRegistryFallback: b('skipDefaultRegistryFallback'),
      pushRetry: typeof o.pushRetry === 'number' ? o.pushRetry : d.registry.pushRetry,
      pullRetry: typeof o.imageDownloadRetry === 'number' ? o.imageDownloadRetry : d.registry.pullRetry,
      pushIgnoreImmutableTagErrors: b('pushIgnoreImmutableTagErrors'),
      skipPushPermissionCheck: b('skipPushPermissionCheck'),
      credentials,
    },
    cache: {
      enabled: b('cache') || cacheDir !== undefined || cacheRepo !== undefined ? b('cache', true) : false,
      ...(cacheDir ? { dir: cacheDir } : {}),
      ...(cacheRepo ? { repo: cacheRepo } : {}),
      ttlHours: parseDurationHours(s('cacheTtl') ?? '336h'),
      copyLayers: b('cacheCopyLayers', true),
      runLayers: b('cacheRunLayers', true),
      noPushCache: b('noPushCache'),
    },
    git,
    reproducible: b('reproducible'),
    ...(timestamp !== undefined ? { timestamp } : {}),
    singleSnapshot: b('singleSnapshot'),
    ignorePaths: l('ignorePath'),
    compression: (s('compression') ?? 'gzip') as BuildOptions['compression'],
    // As Kaniko: a level is only passed on when > 0, else go-containerregistry's default (BestSpeed).
    compressionLevel:
      typeof o.compressionLevel === 'number' && o.compressionLevel > 0
        ? o.compressionLevel
        : s('compression') === 'zstd'
          ? 3
          : 1,
    snapshotMode: (s('snapshotMode') ?? 'full') as BuildOptions['snapshotMode'],
    skipUnusedStages: b('skipUnusedStages', true),
    workDir: s('workDir') ?? s('kanikoDir') ?? d.workDir,
    cleanup: b('cleanup'),
    dryRun: b('dryRun'),
    logLevel: (s('verbosity') ?? 'info') as LogLevel,
    logTimestamp: b('logTimestamp'),
    logFormat: (s('logFormat') ?? 'text') as BuildOptions['logFormat'],
  });
}
