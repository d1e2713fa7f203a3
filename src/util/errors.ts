/**
 * Every failure kiln reports is a KilnError: a stable code for scripts, a one-line message for
 * people, the place it comes from (file, line, column) when there is one, and a hint saying what to
 * do. The CLI prints `file:line: message` then the hint, and maps the code's class to an exit code.
 */
export interface SourcePosition {
  file: string;
  line: number;
  column?: number;
}

export type ErrorCategory =
  | 'usage' // bad flags or options
  | 'dockerfile' // syntax or semantic error in the Dockerfile
  | 'context' // build context problems: missing COPY source, bad .dockerignore
  | 'registry' // network, auth, missing manifest, digest mismatch
  | 'isolation' // sandbox cannot start
  | 'run' // a RUN step failed
  | 'fs' // extraction, snapshot, layer writing
  | 'cache'
  | 'internal';

/**
 * Every code kiln reports, by category: scripts match on codes, so a code belongs to exactly one
 * category (test/unit/util/errors.test.ts checks) and a new one is added here, where the compiler
 * makes every `new KilnError(category, code, ...)` name a listed code of its own category.
 */
export const ERROR_CODES = {
  usage: [
    'BAD_ATTEST',
    'BAD_CERTIFICATE',
    'BAD_CREDENTIALS',
    'BAD_DIRECTORY',
    'BAD_ENV',
    'BAD_FLAG_VALUE',
    'BAD_GZIP_BLOCK_SIZE',
    'BAD_GZIP_LEVEL',
    'BAD_INPUT',
    'BAD_PLATFORM',
    'BAD_REFERENCE',
    'CONTEXT_BAD_URL',
    'DESTINATION_DIGEST_MISMATCH',
    'FORMAT_UNSUPPORTED',
    'GIT_TOKEN_FILE',
    'NO_IMAGES',
    'SIGN_KEY_INVALID',
    'SIGN_KEY_PASSWORD',
    'SIGN_NO_IDENTITY',
    'SNAPSHOT_ENGINE',
    'PLAIN_PROC',
    'UNKNOWN_TARGET',
    'UNSUPPORTED_FLAG',
  ],
  dockerfile: [
    'BAD_ARGUMENTS',
    'BAD_CHARACTER',
    'BAD_CHECKSUM',
    'BAD_CHMOD',
    'BAD_DURATION',
    'BAD_ESCAPE',
    'BAD_EXPOSE',
    'BAD_FLAG',
    'BAD_HEREDOC',
    'BAD_MOUNT',
    'BAD_ONBUILD',
    'BAD_STAGE_NAME',
    'BAD_STOPSIGNAL',
    'BAD_SUBSTITUTION',
    'BAD_VOLUME',
    'COPY_DEST_NOT_DIR',
    'DUPLICATE_DIRECTIVE',
    'DUPLICATE_FLAG',
    'DUPLICATE_STAGE',
    'EMPTY_BASE',
    'LINE_TOO_LONG',
    'MISSING_ARGUMENT',
    'NAMED_CONTEXT_BASE',
    'NO_STAGE',
    'REQUIRED_VAR',
    'STAGE_CYCLE',
    'UNKNOWN_FLAG',
    'UNKNOWN_INSTRUCTION',
    'UNKNOWN_STAGE',
    'UNTERMINATED_HEREDOC',
    'UNTERMINATED_QUOTE',
  ],
  context: [
    'BAD_DOCKERIGNORE',
    'CHECKSUM_MISMATCH',
    'CONTEXT_BAD_TAR',
    'CONTEXT_DOWNLOAD_FAILED',
    'CONTEXT_NOT_FOUND',
    'CONTEXT_READ',
    'COPY_DANGLING_LINK',
    'COPY_SOURCE_MISSING',
    'DOCKERFILE_NOT_FOUND',
    'DOCKERIGNORE_READ',
    'GIT_AUTH_FAILED',
    'GIT_FETCH_FAILED',
    'GIT_NOT_FOUND',
    'MOUNT_SOURCE_MISSING',
    'NO_DOCKERFILE',
    'UNKNOWN_CHOWN_GROUP',
    'UNKNOWN_CHOWN_USER',
    'URL_FAILED',
    'URL_REDIRECTS',
    'URL_UNREACHABLE',
  ],
  registry: [
    'BAD_CHALLENGE',
    'BAD_DOCKER_CONFIG',
    'BAD_IMAGE',
    'BAD_MANIFEST',
    'BAD_REDIRECT',
    'BLOB_FETCH_FAILED',
    'BLOB_TOO_LARGE',
    'BLOB_UNKNOWN',
    'BLOB_UPLOAD_FAILED',
    'BLOB_VERIFY_FAILED',
    'CREDENTIAL_HELPER_FAILED',
    'CREDENTIAL_HELPER_MISSING',
    'DENIED',
    'DIGEST_MISMATCH',
    'MANIFEST_CORRUPTED',
    'MANIFEST_FETCH_FAILED',
    'MANIFEST_REJECTED',
    'MANIFEST_UNKNOWN',
    'NETWORK',
    'PLATFORM_NOT_FOUND',
    'REGISTRY_ERROR',
    'REGISTRY_UNAVAILABLE',
    'RESPONSE_TOO_LARGE',
    'SIGN_KEYLESS_FAILED',
    'SIGNATURE_INVALID',
    'TOKEN_FAILED',
    'UNAUTHORIZED',
    'UPLOAD_REJECTED',
  ],
  isolation: [
    'ARCH_UNSUPPORTED',
    'MKNOD_FAILED',
    'MOUNT_COPY',
    'MOUNT_OVER_ROOT',
    'MOUNT_SOURCE',
    'MOUNT_TARGET',
    'NO_ISOLATION',
    'NO_SUBUID',
    'PLATFORM_CANNOT_RUN',
    'RESOLV_CONF',
    'ROOT_MISSING',
    'RUNG_UNAVAILABLE',
    'SANDBOX_SETUP',
    'SANDBOX_START',
    'TOOL_MISSING',
    'UNMAPPED_OWNER',
    'USERNS_MAP',
    'USERNS_START',
  ],
  run: [
    'EMPTY_COMMAND',
    'RUN_FAILED',
    'SECRET_MISSING',
    'SECRET_UNREADABLE',
    'SSH_UNSUPPORTED',
    'UNKNOWN_GROUP',
    'UNKNOWN_USER',
  ],
  fs: [
    'BAD_LAYER',
    'BLOB_CORRUPT',
    'DIGEST_FILE_WRITE',
    'EXTRACT_FAILED',
    'GETFATTR_MISSING',
    'GUNZIP_FAILED',
    'GUNZIP_UNAVAILABLE',
    'GZIP_FAILED',
    'LAYER_CONFLICT',
    'LAYER_WRITE_FAILED',
    'OCI_LAYOUT_INVALID',
    'OCI_LAYOUT_WRITE',
    'OVERLAY_MOUNT',
    'OVERLAY_PATH',
    'OVERLAY_UMOUNT',
    'SBOM_SCAN_FAILED',
    'SNAPSHOT_APPLY',
    'SNAPSHOT_FINISH',
    'SNAPSHOT_WALK',
    'STAGE_COPY_FAILED',
    'SYMLINK_LOOP',
    'TAR_WRITE',
    'UNSAFE_LAYER',
    'WORK_DIR',
    'WORK_DIR_FOREIGN',
    'XATTR_FAILED',
    'ZSTD_FAILED',
    'ZSTD_UNAVAILABLE',
  ],
  cache: ['CACHE_BLOB_CORRUPT'],
  internal: [
    'BAD_DIGEST',
    'BLOB_SIZE_MISMATCH',
    'CLI_SPAWN',
    'ISOLATION_NOT_READY',
    'LAYER_NOT_LOCAL',
    'NO_CLIENT',
    'NO_LAYER_SOURCE',
    'SNAPSHOT_REUSED',
    'STAGE_NOT_BUILT',
    'UNEXPECTED',
    'UNEXPECTED_FROM',
  ],
} as const satisfies Record<ErrorCategory, readonly string[]>;

export type ErrorCode<C extends ErrorCategory = ErrorCategory> = (typeof ERROR_CODES)[C][number];

export interface KilnErrorOptions {
  hint?: string;
  position?: SourcePosition;
  cause?: unknown;
}

export class KilnError<C extends ErrorCategory = ErrorCategory> extends Error {
  readonly code: ErrorCode<C>;
  readonly category: C;
  readonly hint?: string;
  readonly position?: SourcePosition;

  constructor(category: C, code: ErrorCode<C>, message: string, opts: KilnErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KilnError';
    this.category = category;
    this.code = code;
    this.hint = opts.hint;
    this.position = opts.position;
  }

  /** `Dockerfile:7:3: message` when positioned, else the message; the hint on its own line. */
  format(): string {
    const where = this.position
      ? `${this.position.file}:${this.position.line}${this.position.column ? `:${this.position.column}` : ''}: `
      : '';
    return escapeControl(`${where}${this.message}${this.hint ? `\n  hint: ${this.hint}` : ''}`);
  }
}

/**
 * Control characters (but newline and tab) as `\xNN`: messages quote input (a binary Dockerfile,
 * a RUN's output), whose escape sequences must not reach the terminal as such.
 */
export function escapeControl(s: string): string {
  return s.replace(
    /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** Exit codes, documented in the README. */
export const EXIT_CODES: Record<ErrorCategory, number> = {
  usage: 2,
  dockerfile: 3,
  context: 4,
  registry: 5,
  isolation: 6,
  run: 7,
  fs: 8,
  cache: 9,
  internal: 70,
};

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}

/** Wraps anything thrown into a KilnError without losing the original as `cause`. */
export function toKilnError(e: unknown): KilnError {
  if (e instanceof KilnError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new KilnError('internal', 'UNEXPECTED', msg, { cause: e });
}
