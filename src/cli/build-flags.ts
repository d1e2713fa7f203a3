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
  type RegistryCredential,
  type SecretSpec,
} from '../build/options.ts';
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

/** Kaniko flags accepted for compatibility that change nothing in kiln. */
const IGNORED = [
  'use-new-run',
  'force',
  'ignore-var-run',
  'compressed-caching',
  'cache-copy-layers-ignored',
  'preserve-context',
  'materialize',
];

export function addBuildFlags(cmd: Command): Command {
  cmd
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
    .option('-d, --destination <ref>', 'image reference to push (repeatable)', collect, [])
    .option(
      '--build-arg <key=value>',
      'build arg (repeatable); KEY alone takes it from the environment',
      collect,
      [],
    )
    .option('--target <stage>', 'stage to build')
    .option('--label <key=value>', 'label added to the image (repeatable)', collect, [])
    .option('--annotation <key=value>', 'manifest annotation (repeatable)', collect, [])
    .option('--custom-platform <os/arch[/variant]>', 'target platform (Kaniko name)')
    .option('--platform <os/arch[/variant]>', 'target platform')
    .addOption(
      new Option('--isolation <mode>', 'sandbox for RUN')
        .choices(['auto', 'rootless', 'chroot', 'plain'])
        .default('auto'),
    )
    .option(
      '--secret <id=x,src=path|env=VAR>',
      'build secret for RUN --mount=type=secret (repeatable)',
      collect,
      [],
    )
    .addOption(
      new Option('--network <mode>', 'default RUN network')
        .choices(['default', 'none', 'host'])
        .default('default'),
    )
    .option('--tar-path <file>', 'write a docker-archive tarball')
    .option('--oci-layout-path <dir>', 'write an OCI image layout')
    .option('--digest-file <file>', 'write the image digest')
    .option('--image-name-with-digest-file <file>', 'write repo@digest per destination')
    .option('--image-name-tag-with-digest-file <file>', 'write repo:tag@digest per destination')
    .addOption(
      new Option('--format <format>', 'manifest media types').choices(['oci', 'docker']).default('oci'),
    )
    .option('--insecure-registry <host>', 'registry reached over plain HTTP (repeatable)', collect, [])
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
    .option('--registry-map <orig=mirror[;mirror]>', 'mirrors for any registry (repeatable)', collect, [])
    .option('--push-retry <n>', 'retries for each push request', parseIntArg, 3)
    .option('--image-download-retry <n>', 'retries for each pull request', parseIntArg, 3)
    .option('--image-fs-extract-retry <n>', 'accepted for Kaniko compatibility', parseIntArg, 0)
    .option('--cache-dir <dir>', 'local layer cache directory')
    .option('--cache-repo <repo>', 'registry repository for cached layers')
    .option('--cache-ttl <duration>', 'cache entry lifetime, e.g. 336h', '336h')
    .option('--ignore-path <path>', 'path never snapshotted (repeatable)', collect, [])
    .option('--timestamp <unix-seconds>', 'clamp file and image times to this (SOURCE_DATE_EPOCH)')
    .addOption(
      new Option('--compression <algo>', 'layer compression')
        .choices(['gzip', 'zstd', 'none'])
        .default('gzip'),
    )
    .option('--compression-level <n>', 'compression level', parseIntArg, 6)
    .addOption(
      new Option('--snapshot-mode <mode>', 'accepted for Kaniko compatibility')
        .choices(['full', 'redo', 'time'])
        .default('full'),
    )
    .option('--kaniko-dir <dir>', 'scratch directory (Kaniko name)')
    .option('--work-dir <dir>', 'scratch directory')
    .option('--git <branch=x,single-branch=true,recurse-submodules=true>', 'git context options')
    .addOption(
      new Option('-v, --verbosity <level>', 'log level')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'panic', 'fatal'])
        .default('info'),
    )
    .addOption(
      new Option('--log-format <format>', 'log format').choices(['text', 'color', 'json']).default('text'),
    );
  for (const [flag, desc] of [
    ['--no-push', 'build without pushing'],
    ['--no-push-cache', 'do not push cache layers'],
    ['--cache', 'use the layer cache'],
    ['--cache-copy-layers', 'cache COPY layers'],
    ['--cache-run-layers', 'cache RUN layers'],
    ['--insecure', 'push over plain HTTP'],
    ['--insecure-pull', 'pull over plain HTTP'],
    ['--skip-tls-verify', 'do not verify TLS when pushing'],
    ['--skip-tls-verify-pull', 'do not verify TLS when pulling'],
    ['--skip-default-registry-fallback', 'fail instead of falling back from mirrors'],
    ['--reproducible', 'strip timestamps for reproducible images'],
    ['--single-snapshot', 'one layer for the whole stage'],
    ['--skip-unused-stages', 'build only the stages the target needs'],
    ['--cleanup', 'remove the work dir afterwards'],
    ['--log-timestamp', 'timestamps on log lines'],
    ['--push-ignore-immutable-tag-errors', 'ignore errors pushing to immutable tags'],
    ['--skip-push-permission-check', 'skip the push permission check'],
    ['--dry-run', 'print the resolved plan and stop'],
  ] as const) {
    bool(cmd, flag, desc);
  }
  for (const name of IGNORED) cmd.addOption(new Option(`--${name} [bool]`).hideHelp().argParser(parseBool));
  return cmd;
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
      throw new KilnError('usage', 'BAD_FLAG', `--${flag} "${item}" must be key=value`, {
        hint: `write --${flag} key=value`,
      });
    }
    if (eq === 0) throw new KilnError('usage', 'BAD_FLAG', `--${flag} "${item}" has an empty key`);
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
      throw new KilnError('usage', 'BAD_FLAG', `--secret: unknown key "${k}"`, {
        hint: 'write --secret id=<id>,src=<file> or --secret id=<id>,env=<VAR>',
      });
  }
  if (!spec.id)
    throw new KilnError('usage', 'BAD_FLAG', '--secret needs id=<id>', {
      hint: 'write --secret id=<id>,src=<file>',
    });
  if (!spec.src && !spec.env) spec.env = spec.id;
  return spec as SecretSpec;
}

function parseDurationHours(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(h|m|s)?$/.exec(v);
  if (!m)
    throw new KilnError('usage', 'BAD_FLAG', `--cache-ttl "${v}" is not a duration`, {
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
  const certificates = keyValues(l('registryCertificate'), 'registry-certificate', env);
  const clientCerts: BuildOptions['registry']['clientCerts'] = {};
  for (const [host, v] of Object.entries(keyValues(l('registryClientCert'), 'registry-client-cert', env))) {
    const [cert, key] = v.split(',');
    if (!cert || !key)
      throw new KilnError('usage', 'BAD_FLAG', `--registry-client-cert ${host}=${v}: expected host=cert,key`);
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
      throw new KilnError('usage', 'BAD_FLAG', `--timestamp "${ts}" must be unix seconds`);
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
        throw new KilnError('usage', 'BAD_FLAG', `--git: unknown key "${k}"`, {
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
    compressionLevel: typeof o.compressionLevel === 'number' ? o.compressionLevel : 6,
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
