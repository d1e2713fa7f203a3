/** How kiln talks to registries: TLS, plain HTTP, mirrors, retries and explicit credentials. */

export interface RegistryCredential {
  /** Host (and port) the credential is for, e.g. `ghcr.io` or `127.0.0.1:5000`. */
  registry: string;
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Plain HTTP for every registry (Kaniko `--insecure`, applies to push). */
  insecure: boolean;
  /** Plain HTTP for pulls (Kaniko `--insecure-pull`). */
  insecurePull: boolean;
  /** Hosts reached over plain HTTP (Kaniko `--insecure-registry`). */
  insecureRegistries: string[];
  skipTlsVerify: boolean;
  skipTlsVerifyPull: boolean;
  skipTlsVerifyRegistries: string[];
  /**
   * host → CA bundle file, or a Docker certs.d-style directory of `*.crt` CAs and a
   * `client.cert`/`client.key` pair (Kaniko `--registry-certificate host=path`).
   */
  certificates: Record<string, string>;
  /**
   * CA files or certificate directories for every registry (Kimia's `--registry-certificate DIR`);
   * a directory's `<host>/` subdirectories apply to that host only, as in /etc/docker/certs.d.
   */
  certificatePaths?: string[];
  /** host → client cert,key paths (Kaniko `--registry-client-cert host=cert,key`). */
  clientCerts: Record<string, { cert: string; key: string }>;
  /** Mirrors tried, in order, for docker.io pulls before the source (Kaniko `--registry-mirror`). */
  mirrors: string[];
  /** Kaniko `--registry-map orig=mirror;mirror2`: mirrors for any registry. */
  registryMap: Record<string, string[]>;
  /** Kaniko `--skip-default-registry-fallback`. */
  skipDefaultRegistryFallback: boolean;
  pushRetry: number;
  pullRetry: number;
  /** Explicit credentials from an adapter; tried before config.json. */
  credentials: RegistryCredential[];
  /** Directory holding config.json; default $DOCKER_CONFIG or ~/.docker. */
  dockerConfigDir?: string;
}

export function defaultRegistryOptions(): RegistryOptions {
  return {
    insecure: false,
    insecurePull: false,
    insecureRegistries: [],
    skipTlsVerify: false,
    skipTlsVerifyPull: false,
    skipTlsVerifyRegistries: [],
    certificates: {},
    clientCerts: {},
    mirrors: [],
    registryMap: {},
    skipDefaultRegistryFallback: false,
    pushRetry: 3,
    pullRetry: 3,
    credentials: [],
  };
}
