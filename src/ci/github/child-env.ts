/**
 * The environment the kiln CLI runs with. The runner's environment holds every input as INPUT_*
 * (password, github-token, secrets in clear) and the job's service tokens; none of them goes to
 * kiln, whose RUN steps must reach no credential. The registry password goes in a 0600 file that
 * kiln reads once and removes (KILN_REGISTRY_PASSWORD_FILE), never in a variable.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../../util/errors.ts';
import { DOCKER_HUB, parseReference } from '../../registry/reference.ts';

/** Variables the action uses itself and kiln must not inherit. */
const DROP = [
  /^INPUT_/,
  /^STATE_/,
  /^GITHUB_TOKEN$/,
  /^ACTIONS_RUNTIME_TOKEN$/,
  /^ACTIONS_RUNTIME_URL$/,
  /^ACTIONS_CACHE_URL$/,
  /^ACTIONS_RESULTS_URL$/,
  /^KILN_REGISTRY_PASSWORD$/,
];

export interface CredentialInputs {
  registry: string;
  username: string;
  password: string;
  tags: string[];
  sign: boolean;
}

function registryOf(ref: string): string {
  return ref === '' ? DOCKER_HUB : parseReference(ref).registry;
}

/** Explicit credentials: the inputs, else ghcr.io with GITHUB_TOKEN when the workflow passes it. */
function credentials(
  i: CredentialInputs,
  env: NodeJS.ProcessEnv,
): { registry: string; username: string; password: string } | null {
  if (i.username || i.password) {
    if (!i.username || !i.password)
      throw new KilnError('usage', 'BAD_INPUT', `input ${i.username ? 'password' : 'username'} is empty`, {
        hint: 'give both username and password, or neither (then the Docker config from docker/login-action is used)',
      });
    return {
      registry: i.registry || registryOf(i.tags[0] ?? ''),
      username: i.username,
      password: i.password,
    };
  }
  const wantsGhcr = i.registry === 'ghcr.io' || i.tags.some((t) => registryOf(t) === 'ghcr.io');
  if (wantsGhcr && env.GITHUB_TOKEN)
    return {
      registry: 'ghcr.io',
      username: env.GITHUB_ACTOR || 'x-access-token',
      password: env.GITHUB_TOKEN,
    };
  return null;
}

/** kiln's environment; writes the password file into `work` (a 0700 directory) when there is one. */
export function childEnv(i: CredentialInputs, env: NodeJS.ProcessEnv, work: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || DROP.some((re) => re.test(k))) continue;
    // Keyless signing requests the job's OIDC token; without sign: true kiln needs neither.
    if (!i.sign && /^ACTIONS_ID_TOKEN_REQUEST_/.test(k)) continue;
    out[k] = v;
  }
  const c = credentials(i, env);
  if (c) {
    const file = join(work, 'registry-password');
    writeFileSync(file, c.password, { mode: 0o600 });
    out.KILN_REGISTRY = c.registry;
    out.KILN_REGISTRY_USERNAME = c.username;
    out.KILN_REGISTRY_PASSWORD_FILE = file;
  }
  return out;
}
