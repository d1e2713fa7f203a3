/**
 * The OCI image model (image-spec v1.1) and the Docker v2 schema 2 media types it converts to and
 * from. Every module that reads or writes manifests and configs uses these types.
 */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;
export type MediaTypeName = (typeof MediaType)[keyof typeof MediaType];

/** `sha256:<64 hex>` */
export type Digest = string;

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface HealthConfig {
  Test?: string[];
  Interval?: number; // nanoseconds
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The `config` object of an image config; Docker's extra fields kept for parity with docker inspect. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
  Shell?: string[];
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
}

/** Where a blob can be fetched or mounted from without holding it locally. */
export interface BlobSource {
  /** Registry host as written in the reference, e.g. `127.0.0.1:5000` or `docker.io`. */
  registry: string;
  repository: string;
}

/**
 * A layer of an image being built or pulled. `path` is the compressed blob on disk when kiln has
 * it; `source` is where it lives remotely (base layers not downloaded, cross-repo mounts).
 */
export interface LayerBlob {
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId: Digest;
  path?: string;
  source?: BlobSource;
}

/** A finished single-platform image: everything an output writer or a push needs. */
export interface BuiltImage {
  config: ImageConfig;
  /** The exact bytes whose digest is `manifest.config.digest`. */
  configBytes: Buffer;
  manifest: Manifest;
  /** The exact bytes whose digest is the image digest. */
  manifestBytes: Buffer;
  digest: Digest;
  layers: LayerBlob[];
  /** `manifest-descriptor:` annotations, for the descriptor an OCI layout's index.json holds. */
  descriptorAnnotations?: Record<string, string>;
  /** `index:` annotations, for an image index (an OCI layout's index.json). */
  indexAnnotations?: Record<string, string>;
}
