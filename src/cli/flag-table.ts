/**
 * Every `kiln build` / `kiln plan` flag, declared once as plain data: its name, short form and hidden
 * spellings, its KILN_ variable, its type and default, its help line, and where its value lands
 * (a BuildOptions field, a setting of the command itself, or nowhere, and why). Commander reads this
 * table to build the command (build-flags.ts); the CI adapters read it to write argv (argv.ts)
 * without bundling commander. Keys are commander's attribute names (`--tar-path` → `tarPath`), so
 * parsed values are read back typed through FlagValues, never by a string typed by hand.
 */
import type { BuildOptions, CacheOptions, GitContextOptions, OutputOptions } from '../options.ts';
import type { RegistryOptions } from '../registry/options.ts';

/** Help headings, in the order `kiln build --help` shows them. */
export const FLAG_GROUPS = [
  'Input:',
  'Output:',
  'Registry:',
  'Cache:',
  'Image content:',
  'Execution:',
  'Logging:',
  'Supply chain:',
] as const;
export type FlagGroup = (typeof FLAG_GROUPS)[number];

/** A field of BuildOptions, nested ones as `output.tarPath`. */
export type OptionPath =
  | Exclude<keyof BuildOptions, 'output' | 'registry' | 'cache' | 'git'>
  | `output.${keyof OutputOptions}`
  | `registry.${keyof RegistryOptions}`
  | `cache.${keyof CacheOptions}`
  | `git.${keyof GitContextOptions}`;

/** Where a flag's value goes. */
export type Lands =
  /** Into BuildOptions at this path (a test checks that a given value changes that field). */
  | { readonly to: OptionPath }
  /** Into the command's own settings (logging, dry run, result file), not BuildOptions. */
  | { readonly cli: string }
  /** Kaniko or Kimia compatibility: accepted, changes nothing, warns with this reason when given. */
  | { readonly ignored: string; readonly quietWhen?: boolean | string | number }
  /** Accepted by the parser so that the error can name what to do instead. */
  | { readonly refused: string; readonly hint: string };

interface FlagBase {
  readonly long: `--${string}`;
  readonly short?: `-${string}`;
  /** Hidden spellings of the same flag (Kaniko's deprecated camelCase ones). */
  readonly aliases?: readonly `--${string}`[];
  readonly help: string;
  readonly group: FlagGroup;
  readonly lands: Lands;
  /** Hidden from --help; hidden flags have no KILN_ variable. */
  readonly hidden?: boolean;
  /** `KILN_<FLAG>`, or null for hidden flags. */
  readonly env: string | null;
  /** A value that parses and differs from the default (for the table's own tests). */
  readonly sample: string;
}
export interface BoolFlag extends FlagBase {
  readonly type: 'bool';
}
export interface StringFlag<D extends string | undefined = string | undefined> extends FlagBase {
  readonly type: 'string';
  readonly arg: string;
  readonly default: D;
}
export interface ListFlag extends FlagBase {
  readonly type: 'list';
  readonly arg: string;
  /** How a KILN_ variable splits into items: commas and newlines, newlines only, or `,key=`. */
  readonly envSplit: 'comma' | 'newline' | 'key-value';
}
export interface IntFlag<D extends number | undefined = number | undefined> extends FlagBase {
  readonly type: 'int';
  readonly arg: string;
  readonly default: D;
}
export interface ChoiceFlag<C extends string = string> extends FlagBase {
  readonly type: 'choice';
  readonly arg: string;
  readonly choices: readonly C[];
  readonly default: C;
}
export type FlagSpec = BoolFlag | StringFlag | ListFlag | IntFlag | ChoiceFlag;

/** The parsed value of one flag; booleans are undefined when not given (so defaults can depend on it). */
export type ValueOf<F> = F extends BoolFlag
  ? boolean | undefined
  : F extends ListFlag
    ? string[]
    : F extends ChoiceFlag<infer C>
      ? C
      : F extends IntFlag<infer D>
        ? number | D
        : F extends StringFlag<infer D>
          ? string | D
          : never;

/** `--build-arg` → `KILN_BUILD_ARG`. */
export function envNameOf(long: string): string {
  return `KILN_${long.replace(/^--/, '').replace(/-/g, '_').toUpperCase()}`;
}

interface More {
  short?: `-${string}`;
  aliases?: readonly `--${string}`[];
  hidden?: boolean;
  sample?: string;
}
const base = (
  long: `--${string}`,
  help: string,
  group: FlagGroup,
  lands: Lands,
  m: More,
  sample: string,
) => ({
  long,
  help,
  group,
  lands,
  env: m.hidden ? null : envNameOf(long),
  sample: m.sample ?? sample,
  ...(m.short ? { short: m.short } : {}),
  ...(m.aliases ? { aliases: m.aliases } : {}),
  ...(m.hidden ? { hidden: true } : {}),
});

function bool(long: `--${string}`, help: string, group: FlagGroup, lands: Lands, m: More = {}): BoolFlag {
  return { type: 'bool', ...base(long, help, group, lands, m, 'true') };
}
function str<const D extends string | undefined = undefined>(
  long: `--${string}`,
  arg: string,
  help: string,
  group: FlagGroup,
  lands: Lands,
  m: More & { default?: D } = {},
): StringFlag<D> {
  return { type: 'string', arg, default: m.default as D, ...base(long, help, group, lands, m, 'x') };
}
function list(
  long: `--${string}`,
  arg: string,
  help: string,
  group: FlagGroup,
  lands: Lands,
  m: More & { envSplit?: ListFlag['envSplit'] } = {},
): ListFlag {
  return { type: 'list', arg, envSplit: m.envSplit ?? 'comma', ...base(long, help, group, lands, m, 'x') };
}
function int<const D extends number | undefined = undefined>(
  long: `--${string}`,
  arg: string,
  help: string,
  group: FlagGroup,
  lands: Lands,
  m: More & { default?: D } = {},
): IntFlag<D> {
  return { type: 'int', arg, default: m.default as D, ...base(long, help, group, lands, m, '7') };
}
function choice<const C extends string>(
  long: `--${string}`,
  arg: string,
  choices: readonly C[],
  dflt: NoInfer<C>,
  help: string,
  group: FlagGroup,
  lands: Lands,
  m: More = {},
): ChoiceFlag<C> {
  const other = choices.find((c) => c !== dflt) ?? dflt;
  return { type: 'choice', arg, choices, default: dflt, ...base(long, help, group, lands, m, other) };
}

const to = (path: OptionPath): Lands => ({ to: path });
const ignored = (reason: string, quietWhen?: boolean | string | number): Lands =>
  quietWhen === undefined ? { ignored: reason } : { ignored: reason, quietWhen };
const KANIKO_ONLY = 'a Kaniko switch with no counterpart in kiln';

const IN = 'Input:';
const OUT = 'Output:';
const REG = 'Registry:';
const CACHE = 'Cache:';
const IMG = 'Image content:';
const EXEC = 'Execution:';
const LOG = 'Logging:';
const SC = 'Supply chain:';

/** The flags of `kiln build` and `kiln plan`, in --help order. */
export const BUILD_FLAGS = {
  context: str(
    '--context',
    'path',
    'build context: dir, tar://file, .tar.gz, git://... or https://...git#ref:subdir',
    IN,
    to('context'),
    { short: '-c', default: '.' },
  ),
  contextSubPath: str(
    '--context-sub-path',
    'path',
    'sub directory of the context to build',
    IN,
    to('contextSubPath'),
  ),
  dockerfile: str(
    '--dockerfile',
    'path',
    'Dockerfile path (relative to the context unless it exists as given)',
    IN,
    to('dockerfile'),
    { short: '-f', default: 'Dockerfile' },
  ),
  target: str('--target', 'stage', 'stage to build', IN, to('target'), { short: '-t' }),
  buildArg: list(
    '--build-arg',
    'key=value',
    'build arg (repeatable); KEY alone takes it from the environment',
    IN,
    to('buildArgs'),
    { envSplit: 'key-value', sample: 'K=v' },
  ),
  secret: list(
    '--secret',
    'id=x,src=path|env=VAR',
    'build secret for RUN --mount=type=secret (repeatable)',
    IN,
    to('secrets'),
    { envSplit: 'newline', sample: 'id=s,src=/s' },
  ),
  buildContext: list(
    '--build-context',
    'name=dir|docker-image://ref',
    'named context for FROM, COPY --from and RUN --mount from= (repeatable; wins over a stage of that name)',
    IN,
    to('namedContexts'),
    { envSplit: 'newline', sample: 'src=/tmp' },
  ),
  git: str(
    '--git',
    'branch=x,single-branch=true,recurse-submodules=true',
    'git context options',
    IN,
    to('git.branch'),
    { sample: 'branch=dev' },
  ),
  gitBranch: str(
    '--git-branch',
    'branch',
    'git context: branch or tag to check out (Kimia name)',
    IN,
    to('git.branch'),
  ),
  gitRevision: str(
    '--git-revision',
    'sha',
    'git context: commit to check out; wins over the branch (Kimia name)',
    IN,
    to('git.revision'),
  ),
  gitTokenFile: str(
    '--git-token-file',
    'file',
    'git context: file holding the token for an https remote',
    IN,
    to('git.tokenFile'),
    { sample: '/t' },
  ),
  gitTokenUser: str(
    '--git-token-user',
    'user',
    'git context: user name sent with the token (default oauth2)',
    IN,
    to('git.tokenUser'),
  ),
  platform: list(
    '--platform',
    'os/arch[/variant]',
    'target platform(s): a,b or repeated; several build one image each, pushed as one index',
    IN,
    to('platforms'),
    { sample: 'linux/arm64' },
  ),
  customPlatform: list(
    '--custom-platform',
    'os/arch[/variant]',
    'target platform(s) (Kaniko name)',
    IN,
    to('platforms'),
    { aliases: ['--customPlatform'], sample: 'linux/arm64' },
  ),
  skipUnusedStages: bool(
    '--skip-unused-stages',
    'build only the stages the target needs (always on in kiln)',
    IN,
    ignored('kiln always builds only the stages the target needs, as BuildKit does', true),
    { sample: 'false' },
  ),

  destination: list(
    '--destination',
    'ref',
    'image reference to push (repeatable)',
    OUT,
    to('output.destinations'),
    { short: '-d' },
  ),
  noPush: bool('--no-push', 'build without pushing', OUT, to('output.noPush')),
  tarPath: str('--tar-path', 'file', 'write a docker-archive tarball', OUT, to('output.tarPath'), {
    aliases: ['--tarPath'],
  }),
  ociLayoutPath: str(
    '--oci-layout-path',
    'dir',
    'write an OCI image layout',
    OUT,
    to('output.ociLayoutPath'),
  ),
  digestFile: str('--digest-file', 'file', 'write the image digest', OUT, to('output.digestFile')),
  imageNameWithDigestFile: str(
    '--image-name-with-digest-file',
    'file',
    'write repo@digest per destination',
    OUT,
    to('output.imageNameWithDigestFile'),
  ),
  imageNameTagWithDigestFile: str(
    '--image-name-tag-with-digest-file',
    'file',
    'write repo:tag@digest per destination',
    OUT,
    to('output.imageNameTagWithDigestFile'),
  ),
  format: choice(
    '--format',
    'format',
    ['oci', 'docker'],
    'oci',
    'manifest media types',
    OUT,
    to('output.format'),
  ),

  insecure: bool('--insecure', 'push over plain HTTP', REG, to('registry.insecure')),
  insecurePull: bool('--insecure-pull', 'pull over plain HTTP', REG, to('registry.insecurePull')),
  insecureRegistry: list(
    '--insecure-registry',
    'host',
    'registry reached over plain HTTP (repeatable)',
    REG,
    to('registry.insecureRegistries'),
  ),
  skipTlsVerify: bool(
    '--skip-tls-verify',
    'do not verify TLS when pushing',
    REG,
    to('registry.skipTlsVerify'),
  ),
  skipTlsVerifyPull: bool(
    '--skip-tls-verify-pull',
    'do not verify TLS when pulling',
    REG,
    to('registry.skipTlsVerifyPull'),
  ),
  skipTlsVerifyRegistry: list(
    '--skip-tls-verify-registry',
    'host',
    'registry whose TLS certificate is not verified (repeatable)',
    REG,
    to('registry.skipTlsVerifyRegistries'),
  ),
  registryCertificate: list(
    '--registry-certificate',
    '[host=]path',
    'CA file or certificate directory for a registry, or for all without host= (repeatable)',
    REG,
    to('registry.certificates'),
    { envSplit: 'key-value', sample: 'r.io=/ca.pem' },
  ),
  registryClientCert: list(
    '--registry-client-cert',
    'host=cert,key',
    'client certificate for a registry (repeatable)',
    REG,
    to('registry.clientCerts'),
    { envSplit: 'newline', sample: 'r.io=/c.pem,/k.pem' },
  ),
  registryMirror: list(
    '--registry-mirror',
    'host[/prefix]',
    'mirror for docker.io pulls, also KANIKO_REGISTRY_MIRROR (repeatable)',
    REG,
    to('registry.mirrors'),
  ),
  registryMap: list(
    '--registry-map',
    'orig=mirror[/prefix][;orig=mirror]',
    'mirrors for any registry (repeatable)',
    REG,
    to('registry.registryMap'),
    { envSplit: 'key-value', sample: 'a.io=b.io' },
  ),
  skipDefaultRegistryFallback: bool(
    '--skip-default-registry-fallback',
    'fail instead of falling back from mirrors',
    REG,
    to('registry.skipDefaultRegistryFallback'),
  ),
  pushRetry: int('--push-retry', 'n', 'retries for each push request', REG, to('registry.pushRetry'), {
    default: 3,
  }),
  imageDownloadRetry: int(
    '--image-download-retry',
    'n',
    'retries for each pull request',
    REG,
    to('registry.pullRetry'),
    { default: 3 },
  ),
  imageFsExtractRetry: int(
    '--image-fs-extract-retry',
    'n',
    'accepted for Kaniko compatibility (no effect)',
    REG,
    ignored(
      'a tree counts only once its blob is verified (a layer extracted while it downloads is extracted again from the verified file when the download was retried); the pull itself is retried per --image-download-retry',
      0,
    ),
    { default: 0 },
  ),
  pushIgnoreImmutableTagErrors: bool(
    '--push-ignore-immutable-tag-errors',
    'accepted for Kaniko compatibility (no effect)',
    REG,
    ignored('a failed tag push is a registry error (exit 5)', false),
  ),
  skipPushPermissionCheck: bool(
    '--skip-push-permission-check',
    'accepted for Kaniko compatibility (no effect)',
    REG,
    ignored('kiln runs no up-front permission check; auth errors surface at the push (exit 5)', true),
  ),

  cache: bool('--cache', 'use the layer cache', CACHE, to('cache.enabled')),
  cacheDir: str('--cache-dir', 'dir', 'local layer cache directory', CACHE, to('cache.dir')),
  cacheRepo: str('--cache-repo', 'repo', 'registry repository for cached layers', CACHE, to('cache.repo')),
  cacheTtl: str('--cache-ttl', 'duration', 'cache entry lifetime, e.g. 336h', CACHE, to('cache.ttlHours'), {
    default: '336h',
    sample: '6h',
  }),
  treeCacheSize: int(
    '--tree-cache-size',
    'MiB',
    'cap of the extracted-tree store in <cache-dir>/trees (0: off)',
    CACHE,
    to('cache.treeStoreMiB'),
    { default: 4096, sample: '512' },
  ),
  cacheCopyLayers: bool('--cache-copy-layers', 'cache COPY layers', CACHE, to('cache.copyLayers'), {
    sample: 'false',
  }),
  cacheRunLayers: bool('--cache-run-layers', 'cache RUN layers', CACHE, to('cache.runLayers'), {
    sample: 'false',
  }),
  noPushCache: bool('--no-push-cache', 'do not push cache layers', CACHE, to('cache.noPushCache')),

  label: list('--label', 'key=value', 'label added to the image (repeatable)', IMG, to('labels'), {
    envSplit: 'key-value',
    sample: 'k=v',
  }),
  annotation: list('--annotation', 'key=value', 'manifest annotation (repeatable)', IMG, to('annotations'), {
    envSplit: 'key-value',
    sample: 'k=v',
  }),
  reproducible: bool('--reproducible', 'strip timestamps for reproducible images', IMG, to('reproducible')),
  timestamp: str(
    '--timestamp',
    'unix-seconds',
    'clamp file and image times to this (SOURCE_DATE_EPOCH)',
    IMG,
    to('timestamp'),
    { sample: '1700000000' },
  ),
  compression: choice(
    '--compression',
    'algo',
    ['gzip', 'zstd', 'none'],
    'gzip',
    'layer compression',
    IMG,
    to('compression'),
  ),
  compressionLevel: int(
    '--compression-level',
    'n',
    "compression level; unset or <= 0 takes Kaniko's default (gzip 1, zstd 3)",
    IMG,
    to('compressionLevel'),
  ),
  singleSnapshot: bool(
    '--single-snapshot',
    'one layer per image stage, taken at its end (no per-step layers, no layer cache)',
    IMG,
    to('singleSnapshot'),
  ),
  ignorePath: list('--ignore-path', 'path', 'path never snapshotted (repeatable)', IMG, to('ignorePaths'), {
    envSplit: 'newline',
  }),
  snapshotMode: choice(
    '--snapshot-mode',
    'mode',
    ['full', 'redo', 'time'],
    'full',
    'accepted for Kaniko compatibility (no effect)',
    IMG,
    ignored(
      'kiln snapshots with overlayfs where it can mount it, else a stat walk that compares content',
      'full',
    ),
    { aliases: ['--snapshotMode'] },
  ),

  isolation: choice(
    '--isolation',
    'mode',
    ['auto', 'rootless', 'chroot', 'plain'],
    'auto',
    'sandbox for RUN',
    EXEC,
    to('isolation'),
  ),
  network: choice(
    '--network',
    'mode',
    ['default', 'none', 'host'],
    'default',
    'default RUN network',
    EXEC,
    to('network'),
  ),
  workDir: str('--work-dir', 'dir', 'scratch directory', EXEC, to('workDir')),
  kanikoDir: str('--kaniko-dir', 'dir', 'scratch directory (Kaniko name)', EXEC, to('workDir')),
  cleanup: bool('--cleanup', 'remove the work dir afterwards', EXEC, to('cleanup')),
  dryRun: bool('--dry-run', 'print the resolved plan and stop', EXEC, { cli: 'dryRun' }),

  verbosity: choice(
    '--verbosity',
    'level',
    ['trace', 'debug', 'info', 'warn', 'error', 'panic', 'fatal'],
    'info',
    'log level',
    LOG,
    { cli: 'log.level' },
    { short: '-v' },
  ),
  logFormat: choice(
    '--log-format',
    'format',
    ['text', 'color', 'json'],
    'text',
    'log format: text, color (on a terminal), json (one object per line)',
    LOG,
    { cli: 'log.format' },
  ),
  progress: str(
    '--progress',
    'auto|plain|tty|json',
    "buildx's names for the log format: plain = text, tty = color, json = json, auto = color on a terminal, else text",
    LOG,
    { cli: 'log.format' },
    { sample: 'json' },
  ),
  progressInterval: str(
    '--progress-interval',
    'seconds',
    'pull, push and extraction progress in logs and JSON: at most one line or event per blob group this often (default 5), besides one per quarter of the bytes',
    LOG,
    { cli: 'progress.intervalMs' },
    { sample: '0.5' },
  ),
  logTimestamp: bool('--log-timestamp', 'timestamps on log lines', LOG, { cli: 'log.timestamps' }),

  // Supply chain (Kimia's names; parsed in attest-flags.ts).
  attestation: choice(
    '--attestation',
    'level',
    ['off', 'min', 'max'],
    'off',
    'attach SBOM + provenance (max: provenance mode=max)',
    SC,
    to('attest'),
  ),
  attest: list(
    '--attest',
    'type=sbom|provenance,...',
    'one attestation: type=sbom[,format=spdx|cyclonedx] or type=provenance[,mode=min|max] (repeatable)',
    SC,
    to('attest'),
    { sample: 'type=sbom', envSplit: 'newline' },
  ),
  sbomOutput: str(
    '--sbom-output',
    'file',
    'write the SBOM document to this file (several platforms: one file each, the platform before the extensions: sbom.linux-arm64.spdx.json)',
    SC,
    to('attest'),
  ),
  provenanceOutput: str(
    '--provenance-output',
    'file',
    'write the provenance statement to this file (several platforms: one file each, as --sbom-output)',
    SC,
    to('attest'),
  ),
  sign: bool('--sign', 'sign the pushed image and its attestations (cosign format)', SC, to('sign')),
  cosignKey: str(
    '--cosign-key',
    'file',
    'cosign private key (encrypted cosign PEM or PKCS#8 EC); keyless in CI without it',
    SC,
    to('sign'),
  ),
  cosignPasswordEnv: str(
    '--cosign-password-env',
    'VAR',
    'environment variable holding the key password',
    SC,
    to('sign'),
  ),
  fulcioUrl: str('--fulcio-url', 'url', 'Fulcio for keyless signing', SC, to('sign'), {
    default: 'https://fulcio.sigstore.dev',
    hidden: true,
  }),
  rekorUrl: str('--rekor-url', 'url', 'Rekor for keyless signing', SC, to('sign'), {
    default: 'https://rekor.sigstore.dev',
    hidden: true,
  }),

  // Hidden: flags kiln accepts so that Kaniko and Kimia command lines run unchanged.
  bucket: str(
    '--bucket',
    'name',
    'GCS bucket holding the context tarball',
    IN,
    {
      refused: '--bucket (a GCS bucket as the build context) is not supported',
      hint: 'download the context tarball and pass --context tar://<file>',
    },
    { short: '-b', hidden: true },
  ),
  useNewRun: bool(
    '--use-new-run',
    '',
    EXEC,
    ignored('kiln always runs RUN in a sandbox on a separate root and snapshots only what changed'),
    { hidden: true },
  ),
  force: bool('--force', '', EXEC, ignored('kiln runs anywhere, not only in a container'), { hidden: true }),
  forceBuildMetadata: bool('--force-build-metadata', '', EXEC, ignored(KANIKO_ONLY), { hidden: true }),
  ignoreVarRun: bool(
    '--ignore-var-run',
    '',
    EXEC,
    ignored("kiln builds in its own root directory, so the runner's /var/run never leaks in"),
    { hidden: true },
  ),
  whitelistVarRun: bool(
    '--whitelist-var-run',
    '',
    EXEC,
    ignored("kiln builds in its own root directory, so the runner's /var/run never leaks in"),
    { hidden: true },
  ),
  compressedCaching: bool(
    '--compressed-caching',
    '',
    CACHE,
    ignored('a Kaniko memory trade-off; kiln streams layers to disk'),
    { hidden: true },
  ),
  preserveContext: bool(
    '--preserve-context',
    '',
    IN,
    ignored('kiln never changes the build context between stages'),
    { hidden: true },
  ),
  materialize: bool('--materialize', '', CACHE, ignored(KANIKO_ONLY), { hidden: true }),
  credentialHelpers: list(
    '--credential-helpers',
    'value',
    '',
    REG,
    ignored('kiln calls the credHelpers/credsStore named in the Docker config'),
    { hidden: true },
  ),
  storageDriver: list(
    '--storage-driver',
    'value',
    '',
    EXEC,
    ignored("a Kimia/buildah setting; kiln picks overlayfs or a stat walk itself (see 'kiln probe')"),
    { hidden: true },
  ),
  buildkitOpt: list(
    '--buildkit-opt',
    'key=value',
    '',
    EXEC,
    {
      refused: '--buildkit-opt passes options to BuildKit, and kiln is not BuildKit',
      hint: "use kiln's own flags for the same things: --build-arg, --platform, --secret, --label, --annotation, --network, --cache-repo (kiln build --help lists them)",
    },
    { hidden: true },
  ),
  scan: bool(
    '--scan',
    '',
    IMG,
    {
      refused: '--scan (Kimia enterprise image scanning) is not part of kiln',
      hint: 'scan the pushed image in a later CI step with a scanner such as trivy or grype',
    },
    { hidden: true },
  ),
  harden: bool(
    '--harden',
    '',
    IMG,
    {
      refused: '--harden (RapidFort image hardening) is not part of kiln',
      hint: 'kiln builds what the Dockerfile says: harden in the Dockerfile (a slim base, USER, no shell) or in a later CI step',
    },
    { hidden: true },
  ),
} as const satisfies Record<string, FlagSpec>;

/** Flags of `kiln build` alone (not `kiln plan`). */
export const BUILD_ONLY_FLAGS = {
  resultFile: str(
    '--result-file',
    'file',
    'write the build result (digest, size, layers, steps) as JSON',
    OUT,
    { cli: 'resultFile' },
  ),
} as const satisfies Record<string, FlagSpec>;

export type BuildFlagKey = keyof typeof BUILD_FLAGS;
export type FlagValues = { -readonly [K in BuildFlagKey]: ValueOf<(typeof BUILD_FLAGS)[K]> };
export type BuildOnlyValues = {
  -readonly [K in keyof typeof BUILD_ONLY_FLAGS]: ValueOf<(typeof BUILD_ONLY_FLAGS)[K]>;
};

/** Every flag with its key, build-only ones last. */
export function allFlags(): Array<[string, FlagSpec]> {
  return [...Object.entries(BUILD_FLAGS), ...Object.entries(BUILD_ONLY_FLAGS)];
}

/** The one list of flags accepted for compatibility that change nothing, with the reason for each. */
export function ignoredFlags(
  tables: ReadonlyArray<Record<string, FlagSpec>> = [BUILD_FLAGS, WARM_FLAGS],
): Array<{ long: string; aliases: readonly string[]; reason: string }> {
  return tables
    .flatMap((t) => Object.values(t))
    .flatMap((f) =>
      'ignored' in f.lands ? [{ long: f.long, aliases: f.aliases ?? [], reason: f.lands.ignored }] : [],
    );
}

/** Kaniko warmer's flags on `kiln warm` (its registry and logging flags are the build's own). */
export const WARM_FLAGS = {
  image: list('--image', 'ref', 'image to pull (repeatable)', IN, { cli: 'warm.images' }, { short: '-i' }),
  dockerfile: str(
    '--dockerfile',
    'path',
    'also warm the base image of every stage of this Dockerfile',
    IN,
    { cli: 'warm.dockerfile' },
    { short: '-d' },
  ),
  buildArg: list('--build-arg', 'key=value', 'build arg for FROM lines of --dockerfile (repeatable)', IN, {
    cli: 'warm.buildArgs',
  }),
  platform: list(
    '--platform',
    'os/arch[/variant]',
    'platform(s) to pull, a,b or repeated (default: this host)',
    IN,
    { cli: 'warm.platform' },
  ),
  customPlatform: list(
    '--custom-platform',
    'os/arch[/variant]',
    'platform(s) to pull (Kaniko name)',
    IN,
    { cli: 'warm.platform' },
    { aliases: ['--customPlatform'] },
  ),
  cacheDir: str(
    '--cache-dir',
    'dir',
    'the layer cache directory builds use with --cache-dir',
    CACHE,
    { cli: 'warm.cacheDir' },
    { short: '-c', default: '/cache' },
  ),
  force: bool('--force', 'download again even when cached', CACHE, { cli: 'warm.force' }, { short: '-f' }),
  cacheTtl: str(
    '--cache-ttl',
    'duration',
    'accepted for Kaniko compatibility (no effect on warm)',
    CACHE,
    ignored(
      "kiln's base-image cache is keyed by digest, checked against the registry on every warm and build",
      '336h',
    ),
    { default: '336h', sample: '6h' },
  ),
  insecurePull: BUILD_FLAGS.insecurePull,
  insecureRegistry: BUILD_FLAGS.insecureRegistry,
  skipTlsVerifyPull: BUILD_FLAGS.skipTlsVerifyPull,
  skipTlsVerifyRegistry: BUILD_FLAGS.skipTlsVerifyRegistry,
  registryCertificate: BUILD_FLAGS.registryCertificate,
  registryClientCert: BUILD_FLAGS.registryClientCert,
  registryMirror: BUILD_FLAGS.registryMirror,
  registryMap: BUILD_FLAGS.registryMap,
  skipDefaultRegistryFallback: BUILD_FLAGS.skipDefaultRegistryFallback,
  imageDownloadRetry: BUILD_FLAGS.imageDownloadRetry,
  verbosity: BUILD_FLAGS.verbosity,
  logFormat: BUILD_FLAGS.logFormat,
  logTimestamp: BUILD_FLAGS.logTimestamp,
} as const satisfies Record<string, FlagSpec>;
export type WarmValues = { -readonly [K in keyof typeof WARM_FLAGS]: ValueOf<(typeof WARM_FLAGS)[K]> };
