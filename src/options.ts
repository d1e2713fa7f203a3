/**
 * BuildOptions: the one typed object every entry point (CLI, GitHub action, GitLab job) produces and
 * the builder core consumes. Nothing below this type reads argv or environment variables.
 */
import { defaultWorkDir } from './fs/work-dir.ts';
import { defaultRegistryOptions, type RegistryOptions } from './registry/options.ts';
import type { BuildEnvironment } from './attest/ci-env.ts';

export type IsolationChoice = 'auto' | 'rootless' | 'chroot' | 'plain';

export interface SecretSpec {
  id: string;
  /** A file on the build host. */
  src?: string;
  /** An environment variable of the kiln process. */
  env?: string;
}

/** A `--build-context` value kiln reads (src/context/named.ts parses them). */
export type NamedContext = { kind: 'image'; ref: string } | { kind: 'dir'; path: string };

export interface CacheOptions {
  enabled: boolean;
  dir?: string;
  repo?: string;
  ttlHours: number;
  maxSizeBytes?: number;
  /** Cap of the extracted-tree store in `<dir>/trees` (MiB); 0 turns the store off. */
  treeStoreMiB: number;
  copyLayers: boolean;
  runLayers: boolean;
  noPushCache: boolean;
}

export interface GitContextOptions {
  branch?: string;
  revision?: string;
  tokenFile?: string;
  tokenUser?: string;
  recurseSubmodules: boolean;
  insecureSkipTls: boolean;
}

export interface OutputOptions {
  destinations: string[];
  noPush: boolean;
  tarPath?: string;
  ociLayoutPath?: string;
  digestFile?: string;
  imageNameWithDigestFile?: string;
  imageNameTagWithDigestFile?: string;
  /** Push Docker v2s2 media types instead of OCI (some old registries need them). */
  format: 'oci' | 'docker';
}

/** SBOM and provenance (Kimia's --attestation / --attest, and the files they may go to). */
export interface AttestationOptions {
  /** `attach`: pushed with the image; else only generated for `sbomOutput` / `provenanceOutput`. */
  sbom?: { format: 'spdx' | 'cyclonedx'; attach: boolean };
  provenance?: { mode: 'min' | 'max'; attach: boolean };
  sbomOutput?: string;
  provenanceOutput?: string;
  /** Where the build runs (CI variables), read by the adapter for the provenance. */
  environment: BuildEnvironment;
}

/** cosign-compatible signatures of the pushed image and its attestations (`--sign`). */
export interface SignOptions {
  enabled: boolean;
  /** cosign key file: encrypted cosign/sigstore PEM or a PKCS#8 EC key. Without one: keyless. */
  key?: string;
  /** The key's password, read by the adapter from the variable `passwordEnv` names. */
  password?: string;
  passwordEnv?: string;
  /** Keyless: an OIDC token as is (GitLab id_tokens: SIGSTORE_ID_TOKEN)... */
  idToken?: string;
  /** ...or, in GitHub Actions, requested from this URL with this bearer token. */
  tokenRequest?: { url: string; token: string };
  fulcioUrl?: string;
  rekorUrl?: string;
}

export interface BuildOptions {
  /** Directory, `tar://path`, `.tar.gz` file, `git://…`, `https://….git#ref:subdir`, or https tarball. */
  context: string;
  contextSubPath?: string;
  /** Path of the Dockerfile; relative paths resolve against the context directory. `-` reads stdin. */
  dockerfile: string;
  target?: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /**
   * `os/arch[/variant]` each; empty: the host's. One platform gives one image manifest, several
   * give one image each, published as an image index.
   */
  platforms: string[];
  isolation: IsolationChoice;
  secrets: SecretSpec[];
  /** `--build-context name=…` (lowercased names): read by FROM, COPY --from and RUN --mount from=. */
  namedContexts: Record<string, NamedContext>;
  /** Default network for RUN (`--network` of a RUN overrides it). */
  network: 'default' | 'none' | 'host';
  output: OutputOptions;
  registry: RegistryOptions;
  cache: CacheOptions;
  git: GitContextOptions;
  reproducible: boolean;
  /** Kaniko's --single-snapshot: one layer per image stage, taken at its end; steps make none. */
  singleSnapshot: boolean;
  /** Unix seconds that clamps every mtime and the created times (`--timestamp`, SOURCE_DATE_EPOCH). */
  timestamp?: number;
  /** Paths never snapshotted (Kaniko `--ignore-path`). */
  ignorePaths: string[];
  compression: 'gzip' | 'zstd' | 'none';
  compressionLevel: number;
  /** Scratch space for rootfs, layers and state (Kaniko `--kaniko-dir`). */
  workDir: string;
  cleanup: boolean;
  attest: AttestationOptions;
  sign: SignOptions;
}

export function defaultBuildOptions(overrides: Partial<BuildOptions> = {}): BuildOptions {
  return {
    context: '.',
    dockerfile: 'Dockerfile',
    buildArgs: {},
    labels: {},
    annotations: {},
    platforms: [],
    isolation: 'auto',
    secrets: [],
    namedContexts: {},
    network: 'default',
    output: { destinations: [], noPush: false, format: 'oci' },
    registry: defaultRegistryOptions(),
    cache: {
      enabled: false,
      ttlHours: 336,
      treeStoreMiB: 4096,
      copyLayers: true,
      runLayers: true,
      noPushCache: false,
    },
    git: { recurseSubmodules: false, insecureSkipTls: false },
    reproducible: false,
    singleSnapshot: false,
    ignorePaths: [],
    compression: 'gzip',
    compressionLevel: 1,
    workDir: defaultWorkDir(),
    cleanup: false,
    attest: { environment: {} },
    sign: { enabled: false },
    ...overrides,
  };
}
