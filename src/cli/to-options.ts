/**
 * Parsed flag values (typed by the flag table) → BuildOptions and the command's own settings. No
 * commander here and no I/O apart from reading env for `--build-arg NAME` and SOURCE_DATE_EPOCH.
 */
import { parseNamedContexts } from '../context/named.ts';
import { defaultBuildOptions, type BuildOptions } from '../options.ts';
import type { RegistryCredential } from '../registry/options.ts';
import type { LogFormat, LogLevel } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import {
  BUILD_FLAGS,
  BUILD_ONLY_FLAGS,
  type BuildOnlyValues,
  type FlagSpec,
  type FlagValues,
  WARM_FLAGS,
  type WarmValues,
} from './flag-table.ts';
import { keyValues, parseBool, parseDurationHours, parseSecretFlag } from './flag-values.ts';
import { placeAnnotations } from '../image/annotations.ts';
import { takePasswordFile } from './credential-file.ts';
import { formatPlatform, hostPlatform, parsePlatform, parsePlatformList } from '../image/platform.ts';
import { attestOptions, signOptions } from './attest-flags.ts';

/** commander's attribute name of a long flag: `--tar-path` and `--tarPath` are both `tarPath`. */
export function attributeOf(long: string): string {
  return long.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const defaultOf = (f: FlagSpec): unknown => ('default' in f ? f.default : undefined);

function readOne(key: string, f: FlagSpec, o: Record<string, unknown>): unknown {
  // Hidden spellings whose attribute differs from the flag's own (same attribute: same slot already).
  const slots = [key, ...(f.aliases ?? []).map(attributeOf).filter((k) => k !== key)];
  const given = slots.map((k) => o[k]).filter((v) => v !== undefined);
  if (f.type === 'list') return given.flatMap((v) => (Array.isArray(v) ? v.map(String) : [String(v)]));
  const v = given[0] ?? defaultOf(f);
  if (v === undefined) return undefined;
  if (f.type === 'bool') return typeof v === 'boolean' ? v : parseBool(String(v));
  if (f.type === 'int') return typeof v === 'number' ? v : Number(v);
  return String(v);
}

function readTable<T>(table: Record<string, FlagSpec>, o: Record<string, unknown>): T {
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(table)) out[key] = readOne(key, f, o);
  // The table's keys and types are what FlagValues is made of; this is the one untyped step.
  return out as T;
}

/** commander's opts() (or any record keyed by attribute name) read back through the flag table. */
export function readFlags(o: Record<string, unknown>): FlagValues {
  return readTable<FlagValues>(BUILD_FLAGS, o);
}

export function readWarmFlags(o: Record<string, unknown>): WarmValues {
  return readTable<WarmValues>(WARM_FLAGS, o);
}

export function readBuildOnlyFlags(o: Record<string, unknown>): BuildOnlyValues {
  return readTable<BuildOnlyValues>(BUILD_ONLY_FLAGS, o);
}

/** What the command itself does with the flags that do not land in BuildOptions. */
export interface CliSettings {
  dryRun: boolean;
  log: { level: LogLevel; format: LogFormat; timestamps: boolean };
  /** --progress as given (auto when not), and how often transfers are reported in lines and JSON. */
  progress: { mode: 'auto' | 'plain' | 'tty' | 'json'; intervalMs: number };
}

const PROGRESS: Record<string, LogFormat> = { plain: 'text', tty: 'color', json: 'json', auto: 'color' };

/** buildx's --progress as a log format; an explicit --log-format other than the default wins. */
function logFormatOf(v: FlagValues): LogFormat {
  if (v.progress === undefined) return v.logFormat;
  const f = PROGRESS[v.progress];
  if (!f)
    throw new KilnError(
      'usage',
      'BAD_FLAG_VALUE',
      `--progress "${v.progress}" is not auto, plain, tty or json`,
      {
        hint: 'write --progress plain (or --log-format text|color|json)',
      },
    );
  // `auto` is colour where there is a terminal: the color format already falls back to plain text.
  return v.logFormat !== 'text' ? v.logFormat : f;
}

export function cliSettings(v: FlagValues): CliSettings {
  const format = logFormatOf(v);
  return {
    dryRun: v.dryRun ?? false,
    log: { level: v.verbosity, format, timestamps: v.logTimestamp ?? false },
    progress: {
      mode: (v.progress as CliSettings['progress']['mode'] | undefined) ?? 'auto',
      intervalMs: progressIntervalMs(v.progressInterval),
    },
  };
}

function progressIntervalMs(text: string | undefined): number {
  if (text === undefined) return 5000;
  const s = Number(text);
  if (text.trim() === '' || !Number.isFinite(s) || s < 0)
    throw new KilnError(
      'usage',
      'BAD_FLAG_VALUE',
      `--progress-interval "${text}" is not a number of seconds`,
      {
        hint: 'write --progress-interval 5 (seconds; decimals such as 0.5 are allowed)',
      },
    );
  return Math.round(s * 1000);
}

function given(f: FlagSpec, v: unknown, quiet?: unknown): boolean {
  if (v === undefined || v === quiet) return false;
  if (Array.isArray(v)) return v.length > 0;
  return f.type === 'bool' || v !== defaultOf(f);
}

/**
 * One warning per flag given that kiln accepts for compatibility and ignores; throws for a refused
 * flag. Nothing accepted is dropped silently.
 */
export function compatNotes(
  v: FlagValues | WarmValues,
  table: Record<string, FlagSpec> = BUILD_FLAGS,
): string[] {
  const notes: string[] = [];
  const values = v as Record<string, unknown>;
  for (const [key, f] of Object.entries(table)) {
    const l = f.lands;
    if ('refused' in l && given(f, values[key], false))
      throw new KilnError('usage', 'UNSUPPORTED_FLAG', l.refused, { hint: l.hint });
    if ('ignored' in l && given(f, values[key], l.quietWhen))
      notes.push(`${f.long} is accepted for Kaniko compatibility and has no effect here: ${l.ignored}`);
  }
  return notes;
}

/**
 * Explicit registry credentials from KILN_REGISTRY_USERNAME / KILN_REGISTRY_PASSWORD for the host in
 * KILN_REGISTRY (default docker.io). CI adapters use these instead of a flag so the password is never
 * in argv (and so never in the process list); KILN_REGISTRY_PASSWORD_FILE keeps it out of kiln's
 * environment too (credential-file.ts).
 */
export function envCredentials(env: NodeJS.ProcessEnv): RegistryCredential[] {
  const username = env.KILN_REGISTRY_USERNAME ?? '';
  const password = takePasswordFile(env) ?? env.KILN_REGISTRY_PASSWORD ?? '';
  if (username === '' && password === '') return [];
  if (username === '' || password === '')
    throw new KilnError(
      'usage',
      'BAD_CREDENTIALS',
      `KILN_REGISTRY_${username === '' ? 'USERNAME' : 'PASSWORD'} is empty but KILN_REGISTRY_${username === '' ? 'PASSWORD' : 'USERNAME'} is set`,
      { hint: 'set both KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD, or neither' },
    );
  const registry = (env.KILN_REGISTRY ?? '').trim() || 'docker.io';
  // Read once: gone from kiln's environment, so that no child process (credential helper, git,
  // decompressor, sandbox) inherits it.
  delete env.KILN_REGISTRY_PASSWORD;
  return [{ registry, username, password }];
}

/** Kaniko's `--git k=v,...` and Kimia's `--git-branch` etc. (Kimia's win: they are the more specific). */
function gitOptions(f: FlagValues, env: NodeJS.ProcessEnv): BuildOptions['git'] {
  const git = { ...defaultBuildOptions().git };
  for (const [k, v] of Object.entries(keyValues(f.git ? f.git.split(',') : [], 'git', env))) {
    if (k === 'branch') git.branch = v;
    // kiln fetches the one ref it builds (depth 1), so every fetch is single-branch already.
    else if (k === 'single-branch') parseBool(v);
    else if (k === 'recurse-submodules') git.recurseSubmodules = parseBool(v);
    else if (k === 'insecure-skip-tls') git.insecureSkipTls = parseBool(v);
    else
      throw new KilnError('usage', 'BAD_FLAG_VALUE', `--git: unknown key "${k}"`, {
        hint: 'keys are branch, single-branch, recurse-submodules, insecure-skip-tls',
      });
  }
  if (f.gitBranch) git.branch = f.gitBranch;
  if (f.gitRevision) git.revision = f.gitRevision;
  if (f.gitTokenFile) git.tokenFile = f.gitTokenFile;
  if (f.gitTokenUser) git.tokenUser = f.gitTokenUser;
  return git;
}

function timestampOf(v: FlagValues, env: NodeJS.ProcessEnv): number | undefined {
  const ts = v.timestamp ?? env.SOURCE_DATE_EPOCH;
  if (ts === undefined || ts === '') return undefined;
  if (!/^\d+$/.test(ts))
    throw new KilnError('usage', 'BAD_FLAG_VALUE', `--timestamp "${ts}" must be unix seconds`);
  return Number(ts);
}

/**
 * --registry-map values as Kaniko reads them (`a=b;c=d`: pairs split by ';', repeated flags add
 * mirrors), plus kiln's `a=m1;m2` where an item without '=' is one more mirror for the key before it.
 */
function registryMaps(values: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const value of values) {
    let key: string | undefined;
    for (const item of value
      .split(';')
      .map((x) => x.trim())
      .filter(Boolean)) {
      const eq = item.indexOf('=');
      if (eq > 0) key = item.slice(0, eq);
      const mirror = eq > 0 ? item.slice(eq + 1) : item;
      if (key === undefined || mirror === '')
        throw new KilnError(
          'usage',
          'BAD_FLAG_VALUE',
          `--registry-map "${value}" must be registry=mirror[;registry=mirror]`,
          {
            hint: 'e.g. --registry-map index.docker.io=mirror.example.com/hub-proxy',
          },
        );
      out[key] = [...(out[key] ?? []), mirror];
    }
  }
  return out;
}

export function registryOptions(v: FlagValues, env: NodeJS.ProcessEnv): BuildOptions['registry'] {
  const clientCerts: BuildOptions['registry']['clientCerts'] = {};
  for (const [host, c] of Object.entries(keyValues(v.registryClientCert, 'registry-client-cert', env))) {
    const [cert, key] = c.split(',');
    if (!cert || !key)
      throw new KilnError(
        'usage',
        'BAD_FLAG_VALUE',
        `--registry-client-cert ${host}=${c}: expected host=cert,key`,
      );
    clientCerts[host] = { cert, key };
  }
  const registryMap = registryMaps(v.registryMap);
  // Kimia's --registry-certificate DIR (no host=) applies to every registry.
  const certificatePaths = v.registryCertificate.filter((c) => !c.includes('='));
  const certificates = keyValues(
    v.registryCertificate.filter((c) => c.includes('=')),
    'registry-certificate',
    env,
  );
  // Kaniko reads KANIKO_REGISTRY_MIRROR as one more --registry-mirror (';' separates several here).
  const envMirrors = (env.KANIKO_REGISTRY_MIRROR ?? '')
    .split(';')
    .map((m) => m.trim())
    .filter(Boolean);
  return {
    ...defaultBuildOptions().registry,
    insecure: v.insecure ?? false,
    insecurePull: v.insecurePull ?? false,
    insecureRegistries: v.insecureRegistry,
    skipTlsVerify: v.skipTlsVerify ?? false,
    skipTlsVerifyPull: v.skipTlsVerifyPull ?? false,
    skipTlsVerifyRegistries: v.skipTlsVerifyRegistry,
    certificates,
    certificatePaths,
    clientCerts,
    mirrors: [...v.registryMirror, ...envMirrors],
    registryMap,
    skipDefaultRegistryFallback: v.skipDefaultRegistryFallback ?? false,
    pushRetry: v.pushRetry,
    pullRetry: v.imageDownloadRetry,
    credentials: envCredentials(env),
  };
}

function cacheOptions(v: FlagValues): BuildOptions['cache'] {
  const wanted = v.cache ?? (v.cacheDir !== undefined || v.cacheRepo !== undefined);
  return {
    enabled: wanted,
    ...(v.cacheDir ? { dir: v.cacheDir } : {}),
    ...(v.cacheRepo ? { repo: v.cacheRepo } : {}),
    ttlHours: parseDurationHours(v.cacheTtl),
    treeStoreMiB: v.treeCacheSize,
    copyLayers: v.cacheCopyLayers ?? true,
    runLayers: v.cacheRunLayers ?? true,
    noPushCache: v.noPushCache ?? false,
  };
}

function outputOptions(v: FlagValues): BuildOptions['output'] {
  return {
    destinations: v.destination,
    noPush: v.noPush ?? false,
    ...(v.tarPath ? { tarPath: v.tarPath } : {}),
    ...(v.ociLayoutPath ? { ociLayoutPath: v.ociLayoutPath } : {}),
    ...(v.digestFile ? { digestFile: v.digestFile } : {}),
    ...(v.imageNameWithDigestFile ? { imageNameWithDigestFile: v.imageNameWithDigestFile } : {}),
    ...(v.imageNameTagWithDigestFile ? { imageNameTagWithDigestFile: v.imageNameTagWithDigestFile } : {}),
    format: v.format,
  };
}

/** Typed flag values → BuildOptions. */
export function optionsFromFlags(v: FlagValues, env: NodeJS.ProcessEnv = process.env): BuildOptions {
  compatNotes(v);
  const timestamp = timestampOf(v, env);
  const platforms = parsePlatformList([...v.platform, ...v.customPlatform]).map(formatPlatform);
  return defaultBuildOptions({
    context: v.context,
    ...(v.contextSubPath ? { contextSubPath: v.contextSubPath } : {}),
    dockerfile: v.dockerfile,
    ...(v.target ? { target: v.target } : {}),
    buildArgs: keyValues(v.buildArg, 'build-arg', env, true),
    labels: keyValues(v.label, 'label', env),
    annotations: keyValues(v.annotation, 'annotation', env),
    platforms,
    isolation: v.isolation,
    secrets: v.secret.map(parseSecretFlag),
    namedContexts: parseNamedContexts(v.buildContext, process.cwd()),
    network: v.network,
    output: outputOptions(v),
    registry: registryOptions(v, env),
    cache: cacheOptions(v),
    git: gitOptions(v, env),
    reproducible: v.reproducible ?? false,
    singleSnapshot: v.singleSnapshot ?? false,
    ...(timestamp !== undefined ? { timestamp } : {}),
    ignorePaths: v.ignorePath,
    compression: v.compression,
    // As Kaniko: a level is only passed on when > 0, else go-containerregistry's default (BestSpeed).
    compressionLevel:
      v.compressionLevel !== undefined && v.compressionLevel > 0
        ? v.compressionLevel
        : v.compression === 'zstd'
          ? 3
          : 1,
    workDir: v.workDir ?? v.kanikoDir ?? defaultBuildOptions().workDir,
    cleanup: v.cleanup ?? false,
    attest: attestOptions(v, env),
    sign: signOptions(v, env),
  });
}

/** Warnings for `--annotation` values that this build has nowhere to write. */
export function annotationNotes(opts: BuildOptions): string[] {
  const keys = Object.keys(opts.annotations);
  if (keys.length === 0) return [];
  if (opts.output.format === 'docker')
    return [`--annotation ${keys.join(', ')}: Docker v2 manifests have no annotations (use --format oci)`];
  const platforms = opts.platforms.length ? opts.platforms.map(parsePlatform) : [hostPlatform()];
  const each = platforms.map((p) => placeAnnotations(opts.annotations, p));
  const placed = each[0]!;
  // Several platforms push an index, whose entries hold the manifest descriptors' annotations.
  const multi = platforms.length > 1;
  const notes = placed.otherPlatforms
    .filter((k) => each.every((e) => e.otherPlatforms.includes(k)))
    .map((k) => `--annotation ${k} is for other platforms: not written`);
  const layoutOnly = multi
    ? []
    : [
        ...Object.keys(placed.index).map((k) => `index:${k}`),
        ...Object.keys(placed.manifestDescriptor).map((k) => `manifest-descriptor:${k}`),
      ];
  if (layoutOnly.length && !opts.output.ociLayoutPath)
    notes.push(
      `--annotation ${layoutOnly.join(', ')}: only an OCI layout has an index here (kiln pushes one manifest, no index): pass --oci-layout-path to write them`,
    );
  for (const k of Object.keys(placed.indexDescriptor))
    notes.push(`--annotation index-descriptor:${k}: kiln writes no descriptor of an index: not written`);
  return notes;
}
