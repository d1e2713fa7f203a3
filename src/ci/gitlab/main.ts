/**
 * The GitLab CI/CD component's job script (bundled as dist/gitlab.js): KILN_* variables set by
 * templates/build.yml → `kiln build` (the bundled CLI beside this file, as a child process) →
 * a dotenv report (KILN_IMAGE_DIGEST, KILN_IMAGE, KILN_IMAGE_REF, ...) for later jobs.
 * Registry logins (auth.ts) go to a private Docker config, never to argv; default tags (tags.ts) and
 * OCI labels from CI variables (metadata.ts) are added here.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildResult } from '../../result.ts';
import { KilnError, isKilnError, EXIT_CODES } from '../../util/errors.ts';
import { flagArgv } from '../../cli/argv.ts';
import { readInputs, toKilnArgs, parseBoolInput } from '../github/inputs.ts';
import { jobLogins, readConfigDir } from './auth.ts';
import { ciMetadata } from './metadata.ts';
import { destinations } from './tags.ts';

type Env = NodeJS.ProcessEnv;

/**
 * The action inputs the template has a variable for. Any other input the shared parser asks about
 * gets '' (its default): the component does not offer it, and an unrelated KILN_* variable of the
 * pipeline must not turn it on.
 */
const INPUT_ENV: Record<string, string> = {
  context: 'KILN_CONTEXT',
  file: 'KILN_DOCKERFILE',
  'build-args': 'KILN_BUILD_ARGS',
  target: 'KILN_TARGET',
  labels: 'KILN_LABELS',
  secrets: 'KILN_SECRETS',
  push: 'KILN_PUSH',
  isolation: 'KILN_ISOLATION',
  cache: 'KILN_CACHE',
  'cache-dir': 'KILN_CACHE_DIR',
  'cache-repo': 'KILN_CACHE_REPO',
  reproducible: 'KILN_REPRODUCIBLE',
  sign: 'KILN_SIGN',
  'insecure-registries': 'KILN_INSECURE_REGISTRIES',
  'extra-args': 'KILN_EXTRA_ARGS',
};

/** The template's variables, read through the action's typed input parser. */
export function gitlabInputs(env: Env): ReturnType<typeof readInputs> {
  const tags = destinations(env).join('\n');
  return readInputs((name) => {
    if (name === 'tags') return tags;
    // The component's one `attestation` input (Kimia's off|min|max) stands for provenance + SBOM.
    const level = env.KILN_ATTESTATION_LEVEL ?? 'off';
    if (name === 'provenance') return level === 'off' ? 'false' : `mode=${level}`;
    if (name === 'sbom') return level === 'off' ? 'false' : 'true';
    // The `platform` input (one) and `platforms` (a list) both name target platforms.
    if (name === 'platforms')
      return [env.KILN_PLATFORM ?? '', env.KILN_PLATFORMS ?? ''].filter((v) => v.trim()).join(',');
    const key = INPUT_ENV[name];
    return key ? (env[key] ?? '') : '';
  });
}

/** The variables templates/build.yml sets for this script. */
export const TEMPLATE_VARIABLES = [
  'KILN_CONTEXT',
  'KILN_DOCKERFILE',
  'KILN_DESTINATIONS',
  'KILN_BUILD_ARGS',
  'KILN_TARGET',
  'KILN_LABELS',
  'KILN_SECRETS',
  'KILN_PUSH',
  'KILN_PLATFORM',
  'KILN_PLATFORMS',
  'KILN_ISOLATION',
  'KILN_CACHE',
  'KILN_CACHE_DIR',
  'KILN_CACHE_REPO',
  'KILN_REPRODUCIBLE',
  'KILN_INSECURE_REGISTRIES',
  'KILN_EXTRA_ARGS',
  'KILN_ATTESTATION_LEVEL',
  'KILN_SIGN',
  'KILN_DOTENV',
  'KILN_REPOSITORY',
  'KILN_TAG_COMMIT_SHA',
  'KILN_TAG_COMMIT_TAG',
  'KILN_TAG_LATEST',
  'KILN_TAG_REF_SLUG',
  'KILN_OCI_LABELS',
] as const;

/**
 * --label/--annotation argv for the OCI metadata (input oci-labels). Written before the user's own
 * labels and extra-args so theirs win: kiln keeps the last value of a repeated key.
 */
export function metadataArgs(env: Env, reproducible: boolean): string[] {
  if (!parseBoolInput('oci-labels', env.KILN_OCI_LABELS ?? '', true)) return [];
  const items = ciMetadata(env, { reproducible });
  return flagArgv({ label: items, annotation: items });
}

/**
 * The job's own prefix for its report variables: KILN_API_ for a job named `api`. Jobs that need
 * two kiln jobs get both sets; the unprefixed names would collide (the last report wins).
 */
export function jobPrefix(jobName: string | undefined): string {
  const slug = (jobName ?? '')
    .toUpperCase()
    .replace(/[^A-Z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!slug || slug === 'KILN') return '';
  // kiln-build → KILN_BUILD_, not KILN_KILN_BUILD_.
  return slug.startsWith('KILN_') ? `${slug}_` : `KILN_${slug}_`;
}

/** dotenv lines for the report; values are single-line by construction. */
export function dotenv(result: BuildResult, images: string[], jobName?: string): string {
  const vars: Record<string, string> = {
    KILN_IMAGE_DIGEST: result.digest,
    KILN_IMAGE: images[0] ?? '',
    KILN_IMAGE_REF: result.destinations[0] ?? '',
    KILN_IMAGE_ID: result.imageId,
    KILN_ISOLATION: result.isolation.rung,
    KILN_ATTESTATION_DIGEST: result.attestations?.manifest ?? '',
    KILN_SIGNATURES: (result.signatures ?? []).map((x) => x.tag).join(','),
    // Several platforms: KILN_IMAGE_DIGEST names the index, this each platform's image.
    KILN_PLATFORM_DIGESTS: (result.platforms ?? []).map((p) => `${p.platform}=${p.digest}`).join(','),
  };
  const prefix = jobPrefix(jobName);
  const lines = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
  if (prefix) lines.push(...Object.entries(vars).map(([k, v]) => `${k.replace(/^KILN_/, prefix)}=${v}`));
  return lines.join('\n').concat('\n');
}

function cliPath(env: Env): string {
  if (env.KILN_CLI) return resolve(env.KILN_CLI);
  return fileURLToPath(new URL('./cli.js', import.meta.url));
}

function runKiln(cli: string, args: string[], env: Env): Promise<number> {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, [cli, 'build', ...args], {
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', (e) =>
      reject(
        new KilnError('internal', 'CLI_SPAWN', `cannot start kiln (${cli}): ${e.message}`, { cause: e }),
      ),
    );
    child.on('close', (code, signal) => done(code ?? (signal ? 128 : 1)));
  });
}

export async function main(env: Env = process.env): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), 'kiln-gitlab-'));
  try {
    // The job script runs in the project directory; artifacts and cache paths are relative to it.
    const cwd = process.cwd();
    const inputs = gitlabInputs(env);
    const cacheDir = inputs.cache ? resolve(cwd, inputs.cacheDir || '.kiln-cache') : undefined;
    const files = {
      digestFile: join(work, 'digest'),
      imageNameWithDigestFile: join(work, 'image-name-with-digest'),
      resultFile: join(work, 'result.json'),
      ...(cacheDir ? { cacheDir } : {}),
    };
    const childEnv: Env = { ...env };
    // Already turned into argv; kiln would otherwise read some of them again as KILN_<FLAG> variables.
    for (const name of TEMPLATE_VARIABLES) delete childEnv[name];
    const logins = jobLogins(env, readConfigDir(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker')));
    if (logins) {
      const dir = join(work, 'docker');
      await mkdir(dir, { mode: 0o700 });
      await writeFile(join(dir, 'config.json'), JSON.stringify(logins.config), { mode: 0o600 });
      childEnv.DOCKER_CONFIG = dir;
      // Merged into the file above; kiln would otherwise read it first and skip the job tokens' order.
      delete childEnv.DOCKER_AUTH_CONFIG;
      const list = Object.entries(logins.hosts).map(([h, o]) => `${h} (${o})`);
      if (list.length) process.stdout.write(`kiln: registry logins: ${list.join(', ')}\n`);
    }
    const args = [...metadataArgs(env, inputs.reproducible), ...toKilnArgs(inputs, files)];
    // GitLab's job cache zips every path under cache-dir and cannot leave a folder out: the
    // extracted-tree store (the blobs uncompressed again) would multiply the upload, so it is off.
    if (cacheDir) args.push('--tree-cache-size', '0');
    process.stdout.write(`$ kiln build ${args.join(' ')}\n`);
    const code = await runKiln(cliPath(env), args, childEnv);
    if (code !== 0) return code;
    const result = JSON.parse(await readFile(files.resultFile, 'utf8')) as BuildResult;
    const images = (await readFile(files.imageNameWithDigestFile, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean);
    const report = resolve(cwd, env.KILN_DOTENV || 'kiln.env');
    await writeFile(report, dotenv(result, result.pushed ? images : [], env.CI_JOB_NAME));
    process.stdout.write(
      `kiln: ${result.digest} (${result.layers} layers, ${result.size} bytes, isolation ${result.isolation.rung}); wrote ${report}\n`,
    );
    return 0;
  } catch (e) {
    if (isKilnError(e)) {
      process.stderr.write(`error: ${e.format()}\n`);
      return EXIT_CODES[e.category];
    }
    process.stderr.write(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT_CODES.internal;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
