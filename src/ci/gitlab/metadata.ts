/**
 * OCI labels and manifest annotations from GitLab's predefined variables, the keys
 * docker/metadata-action adds by default (org.opencontainers.image.*), so a GitLab-built image
 * carries the same provenance hints as one from a GitHub workflow. The user's own `labels` input
 * comes later on the command line and wins for the same key.
 */
type Env = NodeJS.ProcessEnv;

const PREFIX = 'org.opencontainers.image.';

/**
 * The metadata for this pipeline as KEY=VALUE items; keys whose variable is unset are left out.
 * `created` is the build time like metadata-action's, but the commit time for reproducible builds
 * (the current time would change the digest on every run).
 */
export function ciMetadata(env: Env, opts: { reproducible: boolean; now?: Date }): string[] {
  const created = opts.reproducible ? env.CI_COMMIT_TIMESTAMP : (opts.now ?? new Date()).toISOString();
  const values: [string, string | undefined][] = [
    ['title', env.CI_PROJECT_NAME],
    ['description', env.CI_PROJECT_DESCRIPTION],
    ['url', env.CI_PROJECT_URL],
    ['source', env.CI_PROJECT_URL],
    ['version', env.CI_COMMIT_TAG || env.CI_COMMIT_REF_SLUG],
    ['created', created],
    ['revision', env.CI_COMMIT_SHA],
  ];
  // Labels are single KEY=VALUE items: a multi-line project description is cut to its first line.
  return values
    .map(([k, v]) => [k, (v ?? '').split(/\r?\n/)[0]!.trim()] as const)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${PREFIX}${k}=${v}`);
}
