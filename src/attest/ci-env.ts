/**
 * Where a build runs, read from the CI's documented variables (GitHub Actions, GitLab CI): the
 * builder id, invocation id and source repository that go into the provenance. Adapters call this
 * with their environment; the core never reads process.env itself.
 */

export interface BuildEnvironment {
  /** The run's URL: BuildKit (through buildx) uses it as builder.id in GitHub Actions. */
  builderId?: string;
  invocationId?: string;
  /** Repository URL and commit of the sources, when the CI knows them. */
  source?: { uri: string; commit?: string; ref?: string };
  /** CI facts kept as they are (names prefixed with the CI: github_*, gitlab_*). */
  ci?: Record<string, string>;
}

type Env = Record<string, string | undefined>;

/** Strips credentials from a URL (a CI clone URL may carry a token). */
export function publicUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}

function github(env: Env): BuildEnvironment | undefined {
  if (env.GITHUB_ACTIONS !== 'true' || !env.GITHUB_REPOSITORY) return undefined;
  const server = publicUrl(env.GITHUB_SERVER_URL ?? 'https://github.com');
  const repo = `${server}/${env.GITHUB_REPOSITORY}`;
  const run = env.GITHUB_RUN_ID ? `${repo}/actions/runs/${env.GITHUB_RUN_ID}` : undefined;
  const ci: Record<string, string> = {};
  for (const [k, v] of [
    ['github_repository', env.GITHUB_REPOSITORY],
    ['github_workflow_ref', env.GITHUB_WORKFLOW_REF],
    ['github_run_id', env.GITHUB_RUN_ID],
    ['github_run_attempt', env.GITHUB_RUN_ATTEMPT],
    ['github_sha', env.GITHUB_SHA],
    ['github_ref', env.GITHUB_REF],
    ['github_event_name', env.GITHUB_EVENT_NAME],
    ['github_runner_environment', env.RUNNER_ENVIRONMENT],
  ] as const)
    if (v) ci[k] = v;
  const out: BuildEnvironment = {
    source: {
      uri: `${repo}.git`,
      ...(env.GITHUB_SHA ? { commit: env.GITHUB_SHA } : {}),
      ...(env.GITHUB_REF ? { ref: env.GITHUB_REF } : {}),
    },
    ci,
  };
  if (run) {
    out.builderId = run;
    out.invocationId = `${run}/attempts/${env.GITHUB_RUN_ATTEMPT ?? '1'}`;
  }
  return out;
}

function gitlab(env: Env): BuildEnvironment | undefined {
  if (env.GITLAB_CI !== 'true' || !env.CI_PROJECT_URL) return undefined;
  const project = publicUrl(env.CI_PROJECT_URL);
  const ci: Record<string, string> = {};
  for (const [k, v] of [
    ['gitlab_project_url', project],
    ['gitlab_pipeline_url', env.CI_PIPELINE_URL],
    ['gitlab_job_url', env.CI_JOB_URL],
    ['gitlab_commit_sha', env.CI_COMMIT_SHA],
    ['gitlab_commit_ref_name', env.CI_COMMIT_REF_NAME],
    ['gitlab_pipeline_source', env.CI_PIPELINE_SOURCE],
  ] as const)
    if (v) ci[k] = v;
  const out: BuildEnvironment = {
    source: { uri: `${project}.git`, ...(env.CI_COMMIT_SHA ? { commit: env.CI_COMMIT_SHA } : {}) },
    ci,
  };
  const job = env.CI_JOB_URL ? publicUrl(env.CI_JOB_URL) : undefined;
  const pipeline = env.CI_PIPELINE_URL ? publicUrl(env.CI_PIPELINE_URL) : undefined;
  if (job ?? pipeline) out.builderId = (job ?? pipeline)!;
  if (job) out.invocationId = job;
  return out;
}

/** The build environment from CI variables; empty outside a known CI. */
export function buildEnvironment(env: Env): BuildEnvironment {
  return github(env) ?? gitlab(env) ?? {};
}
