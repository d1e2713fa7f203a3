import { createRequire as __kilnCreateRequire } from 'node:module'; const require = __kilnCreateRequire(import.meta.url); import { fileURLToPath as __kilnFileURLToPath } from 'node:url'; const __filename = __kilnFileURLToPath(import.meta.url); import { dirname as __kilnDirname } from 'node:path'; const __dirname = __kilnDirname(__filename);

// src/ci/gitlab/main.ts
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join as join2, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// src/util/errors.ts
var KilnError = class extends Error {
  code;
  category;
  hint;
  position;
  constructor(category, code, message, opts = {}) {
    super(message, opts.cause === void 0 ? void 0 : { cause: opts.cause });
    this.name = "KilnError";
    this.category = category;
    this.code = code;
    this.hint = opts.hint;
    this.position = opts.position;
  }
  /** `Dockerfile:7:3: message` when positioned, else the message; the hint on its own line. */
  format() {
    const where = this.position ? `${this.position.file}:${this.position.line}${this.position.column ? `:${this.position.column}` : ""}: ` : "";
    return escapeControl(`${where}${this.message}${this.hint ? `
  hint: ${this.hint}` : ""}`);
  }
};
function escapeControl(s) {
  return s.replace(
    /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`
  );
}
var EXIT_CODES = {
  usage: 2,
  dockerfile: 3,
  context: 4,
  registry: 5,
  isolation: 6,
  run: 7,
  fs: 8,
  cache: 9,
  internal: 70
};
function isKilnError(e) {
  return e instanceof KilnError;
}

// src/cli/flag-table.ts
function envNameOf(long) {
  return `KILN_${long.replace(/^--/, "").replace(/-/g, "_").toUpperCase()}`;
}
var base = (long, help, group, lands, m, sample) => ({
  long,
  help,
  group,
  lands,
  env: m.hidden ? null : envNameOf(long),
  sample: m.sample ?? sample,
  ...m.short ? { short: m.short } : {},
  ...m.aliases ? { aliases: m.aliases } : {},
  ...m.hidden ? { hidden: true } : {}
});
function bool(long, help, group, lands, m = {}) {
  return { type: "bool", ...base(long, help, group, lands, m, "true") };
}
function str(long, arg, help, group, lands, m = {}) {
  return { type: "string", arg, default: m.default, ...base(long, help, group, lands, m, "x") };
}
function list(long, arg, help, group, lands, m = {}) {
  return { type: "list", arg, envSplit: m.envSplit ?? "comma", ...base(long, help, group, lands, m, "x") };
}
function int(long, arg, help, group, lands, m = {}) {
  return { type: "int", arg, default: m.default, ...base(long, help, group, lands, m, "7") };
}
function choice(long, arg, choices, dflt, help, group, lands, m = {}) {
  const other = choices.find((c) => c !== dflt) ?? dflt;
  return { type: "choice", arg, choices, default: dflt, ...base(long, help, group, lands, m, other) };
}
var to = (path) => ({ to: path });
var ignored = (reason, quietWhen) => quietWhen === void 0 ? { ignored: reason } : { ignored: reason, quietWhen };
var KANIKO_ONLY = "a Kaniko switch with no counterpart in kiln";
var IN = "Input:";
var OUT = "Output:";
var REG = "Registry:";
var CACHE = "Cache:";
var IMG = "Image content:";
var EXEC = "Execution:";
var LOG = "Logging:";
var SC = "Supply chain:";
var BUILD_FLAGS = {
  context: str(
    "--context",
    "path",
    "build context: dir, tar://file, .tar.gz, git://... or https://...git#ref:subdir",
    IN,
    to("context"),
    { short: "-c", default: "." }
  ),
  contextSubPath: str(
    "--context-sub-path",
    "path",
    "sub directory of the context to build",
    IN,
    to("contextSubPath")
  ),
  dockerfile: str(
    "--dockerfile",
    "path",
    "Dockerfile path (relative to the context unless it exists as given)",
    IN,
    to("dockerfile"),
    { short: "-f", default: "Dockerfile" }
  ),
  target: str("--target", "stage", "stage to build", IN, to("target"), { short: "-t" }),
  buildArg: list(
    "--build-arg",
    "key=value",
    "build arg (repeatable); KEY alone takes it from the environment",
    IN,
    to("buildArgs"),
    { envSplit: "key-value", sample: "K=v" }
  ),
  secret: list(
    "--secret",
    "id=x,src=path|env=VAR",
    "build secret for RUN --mount=type=secret (repeatable)",
    IN,
    to("secrets"),
    { envSplit: "newline", sample: "id=s,src=/s" }
  ),
  buildContext: list(
    "--build-context",
    "name=dir|docker-image://ref",
    "named context for FROM, COPY --from and RUN --mount from= (repeatable; wins over a stage of that name)",
    IN,
    to("namedContexts"),
    { envSplit: "newline", sample: "src=/tmp" }
  ),
  git: str(
    "--git",
    "branch=x,single-branch=true,recurse-submodules=true",
    "git context options",
    IN,
    to("git.branch"),
    { sample: "branch=dev" }
  ),
  gitBranch: str(
    "--git-branch",
    "branch",
    "git context: branch or tag to check out (Kimia name)",
    IN,
    to("git.branch")
  ),
  gitRevision: str(
    "--git-revision",
    "sha",
    "git context: commit to check out; wins over the branch (Kimia name)",
    IN,
    to("git.revision")
  ),
  gitTokenFile: str(
    "--git-token-file",
    "file",
    "git context: file holding the token for an https remote",
    IN,
    to("git.tokenFile"),
    { sample: "/t" }
  ),
  gitTokenUser: str(
    "--git-token-user",
    "user",
    "git context: user name sent with the token (default oauth2)",
    IN,
    to("git.tokenUser")
  ),
  platform: list(
    "--platform",
    "os/arch[/variant]",
    "target platform(s): a,b or repeated; several build one image each, pushed as one index",
    IN,
    to("platforms"),
    { sample: "linux/arm64" }
  ),
  customPlatform: list(
    "--custom-platform",
    "os/arch[/variant]",
    "target platform(s) (Kaniko name)",
    IN,
    to("platforms"),
    { aliases: ["--customPlatform"], sample: "linux/arm64" }
  ),
  skipUnusedStages: bool(
    "--skip-unused-stages",
    "build only the stages the target needs (always on in kiln)",
    IN,
    ignored("kiln always builds only the stages the target needs, as BuildKit does", true),
    { sample: "false" }
  ),
  destination: list(
    "--destination",
    "ref",
    "image reference to push (repeatable)",
    OUT,
    to("output.destinations"),
    { short: "-d" }
  ),
  noPush: bool("--no-push", "build without pushing", OUT, to("output.noPush")),
  tarPath: str("--tar-path", "file", "write a docker-archive tarball", OUT, to("output.tarPath"), {
    aliases: ["--tarPath"]
  }),
  ociLayoutPath: str(
    "--oci-layout-path",
    "dir",
    "write an OCI image layout",
    OUT,
    to("output.ociLayoutPath")
  ),
  digestFile: str("--digest-file", "file", "write the image digest", OUT, to("output.digestFile")),
  imageNameWithDigestFile: str(
    "--image-name-with-digest-file",
    "file",
    "write repo@digest per destination",
    OUT,
    to("output.imageNameWithDigestFile")
  ),
  imageNameTagWithDigestFile: str(
    "--image-name-tag-with-digest-file",
    "file",
    "write repo:tag@digest per destination",
    OUT,
    to("output.imageNameTagWithDigestFile")
  ),
  format: choice(
    "--format",
    "format",
    ["oci", "docker"],
    "oci",
    "manifest media types",
    OUT,
    to("output.format")
  ),
  insecure: bool("--insecure", "push over plain HTTP", REG, to("registry.insecure")),
  insecurePull: bool("--insecure-pull", "pull over plain HTTP", REG, to("registry.insecurePull")),
  insecureRegistry: list(
    "--insecure-registry",
    "host",
    "registry reached over plain HTTP (repeatable)",
    REG,
    to("registry.insecureRegistries")
  ),
  skipTlsVerify: bool(
    "--skip-tls-verify",
    "do not verify TLS when pushing",
    REG,
    to("registry.skipTlsVerify")
  ),
  skipTlsVerifyPull: bool(
    "--skip-tls-verify-pull",
    "do not verify TLS when pulling",
    REG,
    to("registry.skipTlsVerifyPull")
  ),
  skipTlsVerifyRegistry: list(
    "--skip-tls-verify-registry",
    "host",
    "registry whose TLS certificate is not verified (repeatable)",
    REG,
    to("registry.skipTlsVerifyRegistries")
  ),
  registryCertificate: list(
    "--registry-certificate",
    "[host=]path",
    "CA file or certificate directory for a registry, or for all without host= (repeatable)",
    REG,
    to("registry.certificates"),
    { envSplit: "key-value", sample: "r.io=/ca.pem" }
  ),
  registryClientCert: list(
    "--registry-client-cert",
    "host=cert,key",
    "client certificate for a registry (repeatable)",
    REG,
    to("registry.clientCerts"),
    { envSplit: "newline", sample: "r.io=/c.pem,/k.pem" }
  ),
  registryMirror: list(
    "--registry-mirror",
    "host[/prefix]",
    "mirror for docker.io pulls, also KANIKO_REGISTRY_MIRROR (repeatable)",
    REG,
    to("registry.mirrors")
  ),
  registryMap: list(
    "--registry-map",
    "orig=mirror[/prefix][;orig=mirror]",
    "mirrors for any registry (repeatable)",
    REG,
    to("registry.registryMap"),
    { envSplit: "key-value", sample: "a.io=b.io" }
  ),
  skipDefaultRegistryFallback: bool(
    "--skip-default-registry-fallback",
    "fail instead of falling back from mirrors",
    REG,
    to("registry.skipDefaultRegistryFallback")
  ),
  pushRetry: int("--push-retry", "n", "retries for each push request", REG, to("registry.pushRetry"), {
    default: 3
  }),
  imageDownloadRetry: int(
    "--image-download-retry",
    "n",
    "retries for each pull request",
    REG,
    to("registry.pullRetry"),
    { default: 3 }
  ),
  imageFsExtractRetry: int(
    "--image-fs-extract-retry",
    "n",
    "accepted for Kaniko compatibility (no effect)",
    REG,
    ignored(
      "a tree counts only once its blob is verified (a layer extracted while it downloads is extracted again from the verified file when the download was retried); the pull itself is retried per --image-download-retry",
      0
    ),
    { default: 0 }
  ),
  pushIgnoreImmutableTagErrors: bool(
    "--push-ignore-immutable-tag-errors",
    "accepted for Kaniko compatibility (no effect)",
    REG,
    ignored("a failed tag push is a registry error (exit 5)", false)
  ),
  skipPushPermissionCheck: bool(
    "--skip-push-permission-check",
    "accepted for Kaniko compatibility (no effect)",
    REG,
    ignored("kiln runs no up-front permission check; auth errors surface at the push (exit 5)", true)
  ),
  cache: bool("--cache", "use the layer cache", CACHE, to("cache.enabled")),
  cacheDir: str("--cache-dir", "dir", "local layer cache directory", CACHE, to("cache.dir")),
  cacheRepo: str("--cache-repo", "repo", "registry repository for cached layers", CACHE, to("cache.repo")),
  cacheTtl: str("--cache-ttl", "duration", "cache entry lifetime, e.g. 336h", CACHE, to("cache.ttlHours"), {
    default: "336h",
    sample: "6h"
  }),
  treeCacheSize: int(
    "--tree-cache-size",
    "MiB",
    "cap of the extracted-tree store in <cache-dir>/trees (0: off)",
    CACHE,
    to("cache.treeStoreMiB"),
    { default: 4096, sample: "512" }
  ),
  cacheCopyLayers: bool("--cache-copy-layers", "cache COPY layers", CACHE, to("cache.copyLayers"), {
    sample: "false"
  }),
  cacheRunLayers: bool("--cache-run-layers", "cache RUN layers", CACHE, to("cache.runLayers"), {
    sample: "false"
  }),
  noPushCache: bool("--no-push-cache", "do not push cache layers", CACHE, to("cache.noPushCache")),
  label: list("--label", "key=value", "label added to the image (repeatable)", IMG, to("labels"), {
    envSplit: "key-value",
    sample: "k=v"
  }),
  annotation: list("--annotation", "key=value", "manifest annotation (repeatable)", IMG, to("annotations"), {
    envSplit: "key-value",
    sample: "k=v"
  }),
  reproducible: bool("--reproducible", "strip timestamps for reproducible images", IMG, to("reproducible")),
  timestamp: str(
    "--timestamp",
    "unix-seconds",
    "clamp file and image times to this (SOURCE_DATE_EPOCH)",
    IMG,
    to("timestamp"),
    { sample: "1700000000" }
  ),
  compression: choice(
    "--compression",
    "algo",
    ["gzip", "zstd", "none"],
    "gzip",
    "layer compression",
    IMG,
    to("compression")
  ),
  compressionLevel: int(
    "--compression-level",
    "n",
    "compression level; unset or <= 0 takes Kaniko's default (gzip 1, zstd 3)",
    IMG,
    to("compressionLevel")
  ),
  singleSnapshot: bool(
    "--single-snapshot",
    "one layer per image stage, taken at its end (no per-step layers, no layer cache)",
    IMG,
    to("singleSnapshot")
  ),
  ignorePath: list("--ignore-path", "path", "path never snapshotted (repeatable)", IMG, to("ignorePaths"), {
    envSplit: "newline"
  }),
  snapshotMode: choice(
    "--snapshot-mode",
    "mode",
    ["full", "redo", "time"],
    "full",
    "accepted for Kaniko compatibility (no effect)",
    IMG,
    ignored(
      "kiln snapshots with overlayfs where it can mount it, else a stat walk that compares content",
      "full"
    ),
    { aliases: ["--snapshotMode"] }
  ),
  isolation: choice(
    "--isolation",
    "mode",
    ["auto", "rootless", "chroot", "plain"],
    "auto",
    "sandbox for RUN",
    EXEC,
    to("isolation")
  ),
  network: choice(
    "--network",
    "mode",
    ["default", "none", "host"],
    "default",
    "default RUN network",
    EXEC,
    to("network")
  ),
  workDir: str("--work-dir", "dir", "scratch directory", EXEC, to("workDir")),
  kanikoDir: str("--kaniko-dir", "dir", "scratch directory (Kaniko name)", EXEC, to("workDir")),
  cleanup: bool("--cleanup", "remove the work dir afterwards", EXEC, to("cleanup")),
  dryRun: bool("--dry-run", "print the resolved plan and stop", EXEC, { cli: "dryRun" }),
  verbosity: choice(
    "--verbosity",
    "level",
    ["trace", "debug", "info", "warn", "error", "panic", "fatal"],
    "info",
    "log level",
    LOG,
    { cli: "log.level" },
    { short: "-v" }
  ),
  logFormat: choice(
    "--log-format",
    "format",
    ["text", "color", "json"],
    "text",
    "log format: text, color (on a terminal), json (one object per line)",
    LOG,
    { cli: "log.format" }
  ),
  progress: str(
    "--progress",
    "auto|plain|tty|json",
    "buildx's names for the log format: plain = text, tty = color, json = json, auto = color on a terminal, else text",
    LOG,
    { cli: "log.format" },
    { sample: "json" }
  ),
  progressInterval: str(
    "--progress-interval",
    "seconds",
    "pull, push and extraction progress in logs and JSON: at most one line or event per blob group this often (default 5), besides one per quarter of the bytes",
    LOG,
    { cli: "progress.intervalMs" },
    { sample: "0.5" }
  ),
  logTimestamp: bool("--log-timestamp", "timestamps on log lines", LOG, { cli: "log.timestamps" }),
  // Supply chain (Kimia's names; parsed in attest-flags.ts).
  attestation: choice(
    "--attestation",
    "level",
    ["off", "min", "max"],
    "off",
    "attach SBOM + provenance (max: provenance mode=max)",
    SC,
    to("attest")
  ),
  attest: list(
    "--attest",
    "type=sbom|provenance,...",
    "one attestation: type=sbom[,format=spdx|cyclonedx] or type=provenance[,mode=min|max] (repeatable)",
    SC,
    to("attest"),
    { sample: "type=sbom", envSplit: "newline" }
  ),
  sbomOutput: str(
    "--sbom-output",
    "file",
    "write the SBOM document to this file (several platforms: one file each, the platform before the extensions: sbom.linux-arm64.spdx.json)",
    SC,
    to("attest")
  ),
  provenanceOutput: str(
    "--provenance-output",
    "file",
    "write the provenance statement to this file (several platforms: one file each, as --sbom-output)",
    SC,
    to("attest")
  ),
  sign: bool("--sign", "sign the pushed image and its attestations (cosign format)", SC, to("sign")),
  cosignKey: str(
    "--cosign-key",
    "file",
    "cosign private key (encrypted cosign PEM or PKCS#8 EC); keyless in CI without it",
    SC,
    to("sign")
  ),
  cosignPasswordEnv: str(
    "--cosign-password-env",
    "VAR",
    "environment variable holding the key password",
    SC,
    to("sign")
  ),
  fulcioUrl: str("--fulcio-url", "url", "Fulcio for keyless signing", SC, to("sign"), {
    default: "https://fulcio.sigstore.dev",
    hidden: true
  }),
  rekorUrl: str("--rekor-url", "url", "Rekor for keyless signing", SC, to("sign"), {
    default: "https://rekor.sigstore.dev",
    hidden: true
  }),
  // Hidden: flags kiln accepts so that Kaniko and Kimia command lines run unchanged.
  bucket: str(
    "--bucket",
    "name",
    "GCS bucket holding the context tarball",
    IN,
    {
      refused: "--bucket (a GCS bucket as the build context) is not supported",
      hint: "download the context tarball and pass --context tar://<file>"
    },
    { short: "-b", hidden: true }
  ),
  useNewRun: bool(
    "--use-new-run",
    "",
    EXEC,
    ignored("kiln always runs RUN in a sandbox on a separate root and snapshots only what changed"),
    { hidden: true }
  ),
  force: bool("--force", "", EXEC, ignored("kiln runs anywhere, not only in a container"), { hidden: true }),
  forceBuildMetadata: bool("--force-build-metadata", "", EXEC, ignored(KANIKO_ONLY), { hidden: true }),
  ignoreVarRun: bool(
    "--ignore-var-run",
    "",
    EXEC,
    ignored("kiln builds in its own root directory, so the runner's /var/run never leaks in"),
    { hidden: true }
  ),
  whitelistVarRun: bool(
    "--whitelist-var-run",
    "",
    EXEC,
    ignored("kiln builds in its own root directory, so the runner's /var/run never leaks in"),
    { hidden: true }
  ),
  compressedCaching: bool(
    "--compressed-caching",
    "",
    CACHE,
    ignored("a Kaniko memory trade-off; kiln streams layers to disk"),
    { hidden: true }
  ),
  preserveContext: bool(
    "--preserve-context",
    "",
    IN,
    ignored("kiln never changes the build context between stages"),
    { hidden: true }
  ),
  materialize: bool("--materialize", "", CACHE, ignored(KANIKO_ONLY), { hidden: true }),
  credentialHelpers: list(
    "--credential-helpers",
    "value",
    "",
    REG,
    ignored("kiln calls the credHelpers/credsStore named in the Docker config"),
    { hidden: true }
  ),
  storageDriver: list(
    "--storage-driver",
    "value",
    "",
    EXEC,
    ignored("a Kimia/buildah setting; kiln picks overlayfs or a stat walk itself (see 'kiln probe')"),
    { hidden: true }
  ),
  buildkitOpt: list(
    "--buildkit-opt",
    "key=value",
    "",
    EXEC,
    {
      refused: "--buildkit-opt passes options to BuildKit, and kiln is not BuildKit",
      hint: "use kiln's own flags for the same things: --build-arg, --platform, --secret, --label, --annotation, --network, --cache-repo (kiln build --help lists them)"
    },
    { hidden: true }
  ),
  scan: bool(
    "--scan",
    "",
    IMG,
    {
      refused: "--scan (Kimia enterprise image scanning) is not part of kiln",
      hint: "scan the pushed image in a later CI step with a scanner such as trivy or grype"
    },
    { hidden: true }
  ),
  harden: bool(
    "--harden",
    "",
    IMG,
    {
      refused: "--harden (RapidFort image hardening) is not part of kiln",
      hint: "kiln builds what the Dockerfile says: harden in the Dockerfile (a slim base, USER, no shell) or in a later CI step"
    },
    { hidden: true }
  )
};
var BUILD_ONLY_FLAGS = {
  resultFile: str(
    "--result-file",
    "file",
    "write the build result (digest, size, layers, steps) as JSON",
    OUT,
    { cli: "resultFile" }
  )
};
var WARM_FLAGS = {
  image: list("--image", "ref", "image to pull (repeatable)", IN, { cli: "warm.images" }, { short: "-i" }),
  dockerfile: str(
    "--dockerfile",
    "path",
    "also warm the base image of every stage of this Dockerfile",
    IN,
    { cli: "warm.dockerfile" },
    { short: "-d" }
  ),
  buildArg: list("--build-arg", "key=value", "build arg for FROM lines of --dockerfile (repeatable)", IN, {
    cli: "warm.buildArgs"
  }),
  platform: list(
    "--platform",
    "os/arch[/variant]",
    "platform(s) to pull, a,b or repeated (default: this host)",
    IN,
    { cli: "warm.platform" }
  ),
  customPlatform: list(
    "--custom-platform",
    "os/arch[/variant]",
    "platform(s) to pull (Kaniko name)",
    IN,
    { cli: "warm.platform" },
    { aliases: ["--customPlatform"] }
  ),
  cacheDir: str(
    "--cache-dir",
    "dir",
    "the layer cache directory builds use with --cache-dir",
    CACHE,
    { cli: "warm.cacheDir" },
    { short: "-c", default: "/cache" }
  ),
  force: bool("--force", "download again even when cached", CACHE, { cli: "warm.force" }, { short: "-f" }),
  cacheTtl: str(
    "--cache-ttl",
    "duration",
    "accepted for Kaniko compatibility (no effect on warm)",
    CACHE,
    ignored(
      "kiln's base-image cache is keyed by digest, checked against the registry on every warm and build",
      "336h"
    ),
    { default: "336h", sample: "6h" }
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
  logTimestamp: BUILD_FLAGS.logTimestamp
};

// src/cli/argv.ts
var TABLE = { ...BUILD_FLAGS, ...BUILD_ONLY_FLAGS };
function flagArgv(values) {
  const out = [];
  for (const [key, v] of Object.entries(values)) {
    const f = TABLE[key];
    if (!f) throw new Error(`flagArgv: ${key} is not in the flag table`);
    if (v === void 0) continue;
    if (f.type === "bool") out.push(`${f.long}=${v === true}`);
    else if (Array.isArray(v)) for (const item of v) out.push(f.long, String(item));
    else out.push(f.long, String(v));
  }
  return out;
}

// src/cli/flag-values.ts
function parseSecretFlag(text) {
  const spec = {};
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    const k = eq === -1 ? part : part.slice(0, eq);
    const v = eq === -1 ? "" : part.slice(eq + 1);
    if (k === "id") spec.id = v;
    else if (k === "src" || k === "source") spec.src = v;
    else if (k === "env") spec.env = v;
    else if (k === "type") continue;
    else
      throw new KilnError("usage", "BAD_FLAG_VALUE", `--secret: unknown key "${k}"`, {
        hint: "write --secret id=<id>,src=<file> or --secret id=<id>,env=<VAR>"
      });
  }
  if (!spec.id)
    throw new KilnError("usage", "BAD_FLAG_VALUE", "--secret needs id=<id>", {
      hint: "write --secret id=<id>,src=<file>"
    });
  if (!spec.src && !spec.env) spec.env = spec.id;
  return spec;
}

// src/ci/github/lists.ts
function splitCsvLine(line) {
  const out = [];
  let cur = "";
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur.trim() === "") {
      quoted = true;
      wasQuoted = true;
      cur = "";
    } else if (c === ",") {
      out.push(wasQuoted ? cur : cur.trim());
      cur = "";
      wasQuoted = false;
    } else cur += c;
  }
  out.push(wasQuoted ? cur : cur.trim());
  return out;
}
function parseList(text, ignoreComma = false) {
  const out = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const quoted = ignoreComma && /^"(?:[^"]|"")*"$/.test(line);
    const items = ignoreComma ? [quoted ? line.slice(1, -1).replace(/""/g, '"') : line] : splitCsvLine(line);
    for (const item of items) {
      const v = ignoreComma ? item : item.trim();
      if (v !== "") out.push(v);
    }
  }
  return out;
}
function parseBoolInput(name, text, dflt) {
  const v = text.trim();
  if (v === "") return dflt;
  if (["true", "True", "TRUE"].includes(v)) return true;
  if (["false", "False", "FALSE"].includes(v)) return false;
  throw new KilnError("usage", "BAD_INPUT", `input ${name} is "${v}", expected true or false`, {
    hint: `set ${name}: true or ${name}: false`
  });
}
function splitArgs(text) {
  const out = [];
  let cur = "";
  let has = false;
  let q = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q === "'") {
      if (c === "'") q = null;
      else cur += c;
    } else if (q === '"') {
      if (c === '"') q = null;
      else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) cur += text[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      q = c;
      has = true;
    } else if (c === "\\" && i + 1 < text.length) {
      cur += text[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur !== "") out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (q)
    throw new KilnError("usage", "BAD_INPUT", `input extra-args has an unterminated ${q} quote`, {
      hint: "close the quote or escape it with a backslash"
    });
  if (has || cur !== "") out.push(cur);
  return out;
}

// src/ci/github/inputs.ts
function keyValueLines(name, items) {
  items.forEach((item, i) => {
    const eq = item.indexOf("=");
    if (eq <= 0)
      throw new KilnError("usage", "BAD_INPUT", `input ${name}: item ${i + 1} "${item}" is not KEY=VALUE`, {
        hint: `write one KEY=VALUE per line in ${name}`
      });
  });
  return items;
}
var ISOLATIONS = ["auto", "rootless", "chroot", "plain"];
function readInputs(get) {
  const g = (n) => get(n).trim();
  const platforms = parseList(get("platforms"));
  for (const p of platforms)
    if (!/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(p))
      throw new KilnError("usage", "BAD_INPUT", `input platforms "${p}" is not os/arch[/variant]`, {
        hint: "write e.g. linux/amd64 or linux/amd64,linux/arm64"
      });
  const isolation = g("isolation") || "auto";
  if (!ISOLATIONS.includes(isolation))
    throw new KilnError(
      "usage",
      "BAD_INPUT",
      `input isolation "${isolation}" is not one of ${ISOLATIONS.join(", ")}`,
      {
        hint: "leave it at auto unless the runner needs a specific rung"
      }
    );
  const secrets = parseList(get("secrets"), true);
  for (const s of secrets) {
    try {
      parseSecretFlag(s);
    } catch (e) {
      throw new KilnError(
        "usage",
        "BAD_INPUT",
        `input secrets: "${s}" is not id=<id>,src=<file> or id=<id>,env=<VAR>`,
        {
          hint: "write one secret per line, e.g. id=npmrc,src=${{ runner.temp }}/npmrc",
          cause: e
        }
      );
    }
  }
  const tags = parseList(get("tags"));
  const push = parseBoolInput("push", get("push"), true);
  if (push && tags.length === 0)
    throw new KilnError("usage", "BAD_INPUT", "input tags is empty but push is true", {
      hint: "set tags (one image reference per line) or push: false"
    });
  return {
    provenance: attestInput("provenance", g("provenance"), push),
    sbom: attestInput("sbom", g("sbom"), false),
    sign: parseBoolInput("sign", get("sign"), false),
    context: g("context") || ".",
    file: g("file"),
    tags,
    buildArgs: keyValueLines("build-args", parseList(get("build-args"), true)),
    target: g("target"),
    push,
    labels: keyValueLines("labels", parseList(get("labels"), true)),
    secrets,
    platforms,
    isolation,
    cache: parseBoolInput("cache", get("cache"), true),
    cacheKey: g("cache-key"),
    cacheDir: g("cache-dir"),
    cacheRepo: g("cache-repo"),
    reproducible: parseBoolInput("reproducible", get("reproducible"), false),
    registry: g("registry"),
    username: g("username"),
    password: get("password"),
    insecureRegistries: parseList(get("insecure-registries")),
    extraArgs: splitArgs(get("extra-args"))
  };
}
function attestInput(name, v, dflt) {
  const type = `type=${name}`;
  if (v === "") return dflt ? type : "";
  if (/^(true|1)$/i.test(v)) return type;
  if (/^(false|0)$/i.test(v)) return "";
  return `${type},${v}`;
}
function toKilnArgs(inputs, files) {
  const args = flagArgv({
    context: inputs.context,
    ...inputs.file ? { dockerfile: inputs.file } : {},
    destination: inputs.tags,
    buildArg: inputs.buildArgs,
    ...inputs.target ? { target: inputs.target } : {},
    ...inputs.push ? {} : { noPush: true },
    label: inputs.labels,
    secret: inputs.secrets,
    ...inputs.platforms.length ? { platform: inputs.platforms } : {},
    isolation: inputs.isolation,
    ...inputs.cache || inputs.cacheRepo ? { cache: true } : {},
    ...inputs.cache && files.cacheDir ? { cacheDir: files.cacheDir } : {},
    ...inputs.cacheRepo ? { cacheRepo: inputs.cacheRepo } : {},
    ...inputs.reproducible ? { reproducible: true } : {},
    attest: [inputs.provenance, inputs.sbom].filter((a) => a !== ""),
    ...inputs.sign ? { sign: true } : {},
    insecureRegistry: inputs.insecureRegistries,
    digestFile: files.digestFile,
    imageNameWithDigestFile: files.imageNameWithDigestFile,
    resultFile: files.resultFile
  });
  return [...args, ...inputs.extraArgs];
}

// src/ci/gitlab/auth.ts
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
function parse(text, origin) {
  try {
    const v = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) return v;
  } catch {
  }
  throw new KilnError("registry", "BAD_DOCKER_CONFIG", `${origin} is not a JSON Docker config`, {
    hint: 'it must look like {"auths":{"registry.example.com":{"auth":"<base64 user:password>"}}}'
  });
}
function authConfigFromEnv(env) {
  const raw = env.DOCKER_AUTH_CONFIG?.trim();
  if (!raw) return null;
  if (!raw.startsWith("{") && existsSync(raw) && statSync(raw).isFile())
    return parse(readFileSync(raw, "utf8"), `DOCKER_AUTH_CONFIG (file ${raw})`);
  return parse(raw, "DOCKER_AUTH_CONFIG");
}
function readConfigDir(dir) {
  const file = join(dir, "config.json");
  if (!existsSync(file)) return {};
  return parse(readFileSync(file, "utf8"), `Docker config ${file}`);
}
function tokenLogins(env) {
  const out = [];
  const add = (host, user, password, origin = "") => {
    if (host && user && password) out.push([host, user, password, origin]);
  };
  add(env.CI_REGISTRY, env.CI_REGISTRY_USER, env.CI_REGISTRY_PASSWORD, "CI_REGISTRY_USER");
  const proxy = env.CI_DEPENDENCY_PROXY_SERVER;
  const [pu, pp] = [env.CI_DEPENDENCY_PROXY_USER, env.CI_DEPENDENCY_PROXY_PASSWORD];
  add(proxy, pu, pp, "CI_DEPENDENCY_PROXY_USER");
  if (proxy?.endsWith(":443")) add(proxy.slice(0, -4), pu, pp, "CI_DEPENDENCY_PROXY_USER");
  return out;
}
function jobLogins(env, existing) {
  const sources = [];
  const fromEnv = authConfigFromEnv(env);
  if (fromEnv) sources.push(["DOCKER_AUTH_CONFIG", fromEnv]);
  sources.push(["Docker config", existing]);
  const tokens = {};
  const tokenOrigin = {};
  for (const [host, user, password, origin] of tokenLogins(env)) {
    tokens[host] ??= { auth: Buffer.from(`${user}:${password}`).toString("base64") };
    tokenOrigin[host] ??= origin;
  }
  const config = {};
  const auths = {};
  const credHelpers = {};
  const hosts = {};
  for (const [origin, c] of sources) {
    for (const [k, v] of Object.entries(c))
      if (!["auths", "credHelpers"].includes(k) && !(k in config)) config[k] = v;
    for (const [host, v] of Object.entries(c.auths ?? {})) {
      if (host in auths) continue;
      auths[host] = v;
      hosts[host] = origin;
    }
    for (const [host, v] of Object.entries(c.credHelpers ?? {})) {
      if (host in credHelpers) continue;
      credHelpers[host] = v;
      hosts[host] ??= `${origin} (credential helper ${v})`;
    }
  }
  for (const [host, v] of Object.entries(tokens)) {
    if (host in auths || host in credHelpers) continue;
    auths[host] = v;
    hosts[host] = tokenOrigin[host];
  }
  if (Object.keys(hosts).length === 0 && Object.keys(config).length === 0) return null;
  return {
    config: {
      ...config,
      ...Object.keys(auths).length ? { auths } : {},
      ...Object.keys(credHelpers).length ? { credHelpers } : {}
    },
    hosts
  };
}

// src/ci/gitlab/metadata.ts
var PREFIX = "org.opencontainers.image.";
function ciMetadata(env, opts) {
  const created = opts.reproducible ? env.CI_COMMIT_TIMESTAMP : (opts.now ?? /* @__PURE__ */ new Date()).toISOString();
  const values = [
    ["title", env.CI_PROJECT_NAME],
    ["description", env.CI_PROJECT_DESCRIPTION],
    ["url", env.CI_PROJECT_URL],
    ["source", env.CI_PROJECT_URL],
    ["version", env.CI_COMMIT_TAG || env.CI_COMMIT_REF_SLUG],
    ["created", created],
    ["revision", env.CI_COMMIT_SHA]
  ];
  return values.map(([k, v]) => [k, (v ?? "").split(/\r?\n/)[0].trim()]).filter(([, v]) => v !== "").map(([k, v]) => `${PREFIX}${k}=${v}`);
}

// src/ci/gitlab/tags.ts
var RULES = [
  ["KILN_TAG_COMMIT_SHA", "tag-commit-sha", true],
  ["KILN_TAG_COMMIT_TAG", "tag-commit-tag", true],
  ["KILN_TAG_LATEST", "tag-latest", true],
  ["KILN_TAG_REF_SLUG", "tag-ref-slug", false]
];
function rule(env, i) {
  const [variable, input, dflt] = RULES[i];
  return parseBoolInput(input, env[variable] ?? "", dflt);
}
function defaultTags(env) {
  const [sha, gitTag, latest, refSlug] = RULES.map((_, i) => rule(env, i));
  const tags = [];
  if (sha && env.CI_COMMIT_SHORT_SHA) tags.push(env.CI_COMMIT_SHORT_SHA);
  if (gitTag && env.CI_COMMIT_TAG) tags.push(env.CI_COMMIT_TAG);
  if (latest && env.CI_COMMIT_BRANCH && env.CI_COMMIT_BRANCH === env.CI_DEFAULT_BRANCH) tags.push("latest");
  if (refSlug && env.CI_COMMIT_REF_SLUG) tags.push(env.CI_COMMIT_REF_SLUG);
  return [...new Set(tags)];
}
function destinations(env) {
  const given = parseList((env.KILN_DESTINATIONS ?? "").replace(/[ \t]+/g, "\n"));
  if (given.length) return given;
  const repository = (env.KILN_REPOSITORY ?? "").trim() || env.CI_REGISTRY_IMAGE || "";
  if (!repository) return [];
  if (/[@\s]|:[^/]*$/.test(repository))
    throw new KilnError("usage", "BAD_INPUT", `input repository "${repository}" is not a repository name`, {
      hint: "give the image name without a tag or digest (e.g. $CI_REGISTRY_IMAGE/app), or set destinations"
    });
  return defaultTags(env).map((t) => `${repository}:${t}`);
}

// src/ci/gitlab/main.ts
var INPUT_ENV = {
  context: "KILN_CONTEXT",
  file: "KILN_DOCKERFILE",
  "build-args": "KILN_BUILD_ARGS",
  target: "KILN_TARGET",
  labels: "KILN_LABELS",
  secrets: "KILN_SECRETS",
  push: "KILN_PUSH",
  isolation: "KILN_ISOLATION",
  cache: "KILN_CACHE",
  "cache-dir": "KILN_CACHE_DIR",
  "cache-repo": "KILN_CACHE_REPO",
  reproducible: "KILN_REPRODUCIBLE",
  sign: "KILN_SIGN",
  "insecure-registries": "KILN_INSECURE_REGISTRIES",
  "extra-args": "KILN_EXTRA_ARGS"
};
function gitlabInputs(env) {
  const tags = destinations(env).join("\n");
  return readInputs((name) => {
    if (name === "tags") return tags;
    const level = env.KILN_ATTESTATION_LEVEL ?? "off";
    if (name === "provenance") return level === "off" ? "false" : `mode=${level}`;
    if (name === "sbom") return level === "off" ? "false" : "true";
    if (name === "platforms")
      return [env.KILN_PLATFORM ?? "", env.KILN_PLATFORMS ?? ""].filter((v) => v.trim()).join(",");
    const key = INPUT_ENV[name];
    return key ? env[key] ?? "" : "";
  });
}
var TEMPLATE_VARIABLES = [
  "KILN_CONTEXT",
  "KILN_DOCKERFILE",
  "KILN_DESTINATIONS",
  "KILN_BUILD_ARGS",
  "KILN_TARGET",
  "KILN_LABELS",
  "KILN_SECRETS",
  "KILN_PUSH",
  "KILN_PLATFORM",
  "KILN_PLATFORMS",
  "KILN_ISOLATION",
  "KILN_CACHE",
  "KILN_CACHE_DIR",
  "KILN_CACHE_REPO",
  "KILN_REPRODUCIBLE",
  "KILN_INSECURE_REGISTRIES",
  "KILN_EXTRA_ARGS",
  "KILN_ATTESTATION_LEVEL",
  "KILN_SIGN",
  "KILN_DOTENV",
  "KILN_REPOSITORY",
  "KILN_TAG_COMMIT_SHA",
  "KILN_TAG_COMMIT_TAG",
  "KILN_TAG_LATEST",
  "KILN_TAG_REF_SLUG",
  "KILN_OCI_LABELS"
];
function metadataArgs(env, reproducible) {
  if (!parseBoolInput("oci-labels", env.KILN_OCI_LABELS ?? "", true)) return [];
  const items = ciMetadata(env, { reproducible });
  return flagArgv({ label: items, annotation: items });
}
function jobPrefix(jobName) {
  const slug = (jobName ?? "").toUpperCase().replace(/[^A-Z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  if (!slug || slug === "KILN") return "";
  return slug.startsWith("KILN_") ? `${slug}_` : `KILN_${slug}_`;
}
function dotenv(result, images, jobName) {
  const vars = {
    KILN_IMAGE_DIGEST: result.digest,
    KILN_IMAGE: images[0] ?? "",
    KILN_IMAGE_REF: result.destinations[0] ?? "",
    KILN_IMAGE_ID: result.imageId,
    KILN_ISOLATION: result.isolation.rung,
    KILN_ATTESTATION_DIGEST: result.attestations?.manifest ?? "",
    KILN_SIGNATURES: (result.signatures ?? []).map((x) => x.tag).join(","),
    // Several platforms: KILN_IMAGE_DIGEST names the index, this each platform's image.
    KILN_PLATFORM_DIGESTS: (result.platforms ?? []).map((p) => `${p.platform}=${p.digest}`).join(",")
  };
  const prefix = jobPrefix(jobName);
  const lines = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
  if (prefix) lines.push(...Object.entries(vars).map(([k, v]) => `${k.replace(/^KILN_/, prefix)}=${v}`));
  return lines.join("\n").concat("\n");
}
function cliPath(env) {
  if (env.KILN_CLI) return resolve(env.KILN_CLI);
  return fileURLToPath(new URL("./cli.js", import.meta.url));
}
function runKiln(cli, args, env) {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, [cli, "build", ...args], {
      env,
      stdio: ["ignore", "inherit", "inherit"]
    });
    child.on(
      "error",
      (e) => reject(
        new KilnError("internal", "CLI_SPAWN", `cannot start kiln (${cli}): ${e.message}`, { cause: e })
      )
    );
    child.on("close", (code, signal) => done(code ?? (signal ? 128 : 1)));
  });
}
async function main(env = process.env) {
  const work = await mkdtemp(join2(tmpdir(), "kiln-gitlab-"));
  try {
    const cwd = process.cwd();
    const inputs = gitlabInputs(env);
    const cacheDir = inputs.cache ? resolve(cwd, inputs.cacheDir || ".kiln-cache") : void 0;
    const files = {
      digestFile: join2(work, "digest"),
      imageNameWithDigestFile: join2(work, "image-name-with-digest"),
      resultFile: join2(work, "result.json"),
      ...cacheDir ? { cacheDir } : {}
    };
    const childEnv = { ...env };
    for (const name of TEMPLATE_VARIABLES) delete childEnv[name];
    const logins = jobLogins(env, readConfigDir(env.DOCKER_CONFIG || join2(env.HOME || homedir(), ".docker")));
    if (logins) {
      const dir = join2(work, "docker");
      await mkdir(dir, { mode: 448 });
      await writeFile(join2(dir, "config.json"), JSON.stringify(logins.config), { mode: 384 });
      childEnv.DOCKER_CONFIG = dir;
      delete childEnv.DOCKER_AUTH_CONFIG;
      const list2 = Object.entries(logins.hosts).map(([h, o]) => `${h} (${o})`);
      if (list2.length) process.stdout.write(`kiln: registry logins: ${list2.join(", ")}
`);
    }
    const args = [...metadataArgs(env, inputs.reproducible), ...toKilnArgs(inputs, files)];
    if (cacheDir) args.push("--tree-cache-size", "0");
    process.stdout.write(`$ kiln build ${args.join(" ")}
`);
    const code = await runKiln(cliPath(env), args, childEnv);
    if (code !== 0) return code;
    const result = JSON.parse(await readFile(files.resultFile, "utf8"));
    const images = (await readFile(files.imageNameWithDigestFile, "utf8").catch(() => "")).split("\n").filter(Boolean);
    const report = resolve(cwd, env.KILN_DOTENV || "kiln.env");
    await writeFile(report, dotenv(result, result.pushed ? images : [], env.CI_JOB_NAME));
    process.stdout.write(
      `kiln: ${result.digest} (${result.layers} layers, ${result.size} bytes, isolation ${result.isolation.rung}); wrote ${report}
`
    );
    return 0;
  } catch (e) {
    if (isKilnError(e)) {
      process.stderr.write(`error: ${e.format()}
`);
      return EXIT_CODES[e.category];
    }
    process.stderr.write(`internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}
`);
    return EXIT_CODES.internal;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// src/ci/gitlab/entry.ts
process.exitCode = await main();
