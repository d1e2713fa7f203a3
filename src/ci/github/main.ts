/**
 * The GitHub Action's main step: build-push-action's inputs → plan.ts → `kiln build` (the bundled
 * CLI, run as a child process so a user-namespace re-exec works the same as on the command line) →
 * the exports kiln does not finish itself (docker load, an OCI tarball) → outputs, job summary, and
 * state for the post step. Credentials reach the child in a 0600 file, never in argv or its
 * environment (child-env.ts). `run()` is exported without side effects (for @github/local-action).
 */
import * as core from '@actions/core';
import * as cache from '@actions/cache';
import * as exec from '@actions/exec';
import { chooseLauncher, launchFacts, type Launcher } from './launcher.ts';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, platform, arch } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildResult } from '../../result.ts';
import { KilnError, isKilnError } from '../../util/errors.ts';
import { readInputs, type ActionInputs } from './action-inputs.ts';
import { planAction, type ActionPlan } from './plan.ts';
import { childEnv } from './child-env.ts';
import { cacheKeys, cachePaths, listingHash } from './cache-dir.ts';
import { lastKilnError, placeOf, redact } from './failure.ts';
import { finishExports } from './finish-exports.ts';
import { imageTable, metadata, stepsTable } from './summary.ts';

export { lastKilnError } from './failure.ts';

export const STATE = {
  built: 'kiln-built',
  cacheDir: 'kiln-cache-dir',
  cacheKey: 'kiln-cache-key',
  cacheHash: 'kiln-cache-hash',
} as const;

/** The bundled CLI: KILN_CLI when set (tests, custom builds), else dist/cli.js beside dist/action/. */
export function cliPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KILN_CLI) return resolve(env.KILN_CLI);
  return fileURLToPath(new URL('../cli.js', import.meta.url));
}

/** The Dockerfile the build will read (cache key, annotations); null for remote contexts. */
export function localDockerfile(inputs: ActionInputs, context: string): string | null {
  if (/^[a-z]+:\/\//.test(context) || context.startsWith('git@')) return null;
  const ctx = context.replace(/^dir:\/\//, '');
  if (inputs.file) {
    if (existsSync(inputs.file)) return inputs.file;
    return isAbsolute(inputs.file) ? inputs.file : join(ctx, inputs.file);
  }
  return join(ctx, 'Dockerfile');
}

async function dockerfileHash(inputs: ActionInputs, context: string): Promise<string> {
  const path = localDockerfile(inputs, context);
  const h = createHash('sha256');
  if (path === null) {
    h.update(`${context}\0${inputs.file}`);
  } else {
    if (!existsSync(path) || !statSync(path).isFile()) {
      throw new KilnError('context', 'NO_DOCKERFILE', `Dockerfile not found: ${path}`, {
        hint: inputs.file
          ? 'check the file input (a path relative to the workspace or to the context)'
          : `put a Dockerfile in the context (${context}) or set the file input`,
      });
    }
    h.update(await readFile(path));
  }
  return h.digest('hex').slice(0, 16);
}

/** Runs the CLI with its output streamed to the job log, keeping the tail of stderr for the annotation. */
async function runKiln(
  cli: string,
  args: string[],
  env: Record<string, string>,
  launcher: Launcher,
): Promise<{ code: number; stderr: string }> {
  const [cmd, ...pre] = launcher.argv as [string, ...string[]];
  let stderr = '';
  try {
    const code = await exec.exec(cmd, [...pre, cli, 'build', ...args], {
      env,
      ignoreReturnCode: true,
      listeners: {
        stderr: (d: Buffer) => {
          stderr = (stderr + d.toString('utf8')).slice(-65536);
        },
      },
    });
    return { code, stderr };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new KilnError('internal', 'CLI_SPAWN', `cannot start kiln (${cli}): ${msg}`, {
      hint: 'the action bundle is incomplete: dist/cli.js must sit beside dist/action/',
      cause: e,
    });
  }
}

/**
 * Whether the runner has a cache service. @github/local-action's stand-in for @actions/cache has
 * no isFeatureAvailable (it serves the cache from a local directory): treat it as available.
 */
function cacheServiceAvailable(): boolean {
  const probe = (cache as { isFeatureAvailable?: () => boolean }).isFeatureAvailable;
  return typeof probe === 'function' ? probe() : true;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, cmd)));
}

async function readOptional(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return '';
  }
}

/** Reports for inputs kiln cannot honour; false when one is an error (the build must not start). */
function emitReports(plan: ActionPlan): boolean {
  let ok = true;
  for (const r of plan.reports) {
    const text = `input ${r.input}: ${r.message}`;
    if (r.level === 'error') {
      core.error(text, { title: `kiln: ${r.input}` });
      ok = false;
    } else if (r.level === 'warning') core.warning(text, { title: `kiln: ${r.input}` });
    else core.notice(text);
  }
  return ok;
}

/** Restores the Actions cache entry into the cache dir; one warning and no request without the service. */
async function setupCache(inputs: ActionInputs, plan: ActionPlan, context: string): Promise<void> {
  const c = plan.cache;
  if (!c.dir) return;
  if (c.seedFrom && existsSync(c.seedFrom)) await cp(c.seedFrom, c.dir, { recursive: true, force: false });
  if (!c.gha) return;
  if (!cacheServiceAvailable()) {
    core.warning(
      'kiln cache: no GitHub Actions cache service here (ACTIONS_CACHE_URL / ACTIONS_RESULTS_URL unset, as on GHES without it or act): the layer cache stays in this job only',
      { title: 'kiln: cache' },
    );
    return;
  }
  const keys = cacheKeys(
    c.gha.prefix,
    `${platform()}-${arch()}`,
    await dockerfileHash(inputs, context),
    process.env.GITHUB_RUN_ID ?? '',
    process.env.GITHUB_RUN_ATTEMPT ?? '',
  );
  if (c.gha.restore) {
    try {
      const hit = await cache.restoreCache(cachePaths(c.dir), keys.primary, keys.restore);
      core.info(hit ? `kiln cache restored from ${hit}` : 'kiln cache: no entry yet');
    } catch (e) {
      core.warning(`kiln cache not restored: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (c.gha.save) {
    core.saveState(STATE.cacheDir, c.dir);
    core.saveState(STATE.cacheKey, keys.primary);
    core.saveState(STATE.cacheHash, await listingHash(c.dir));
  }
}

async function setOutputs(result: BuildResult, plan: ActionPlan, inputs: ActionInputs): Promise<void> {
  const digest = (await readOptional(plan.files.digestFile)) || result.digest;
  const images = (await readOptional(plan.files.imageNameWithDigestFile)).split('\n').filter(Boolean);
  const size = await finishExports(plan, inputs.tags);
  const env = process.env;
  core.setOutput('imageid', result.imageId);
  core.setOutput('digest', digest);
  core.setOutput(
    'metadata',
    JSON.stringify(
      metadata(result, {
        format: inputs.oci === 'false' ? 'docker' : 'oci',
        ...(size !== undefined ? { size } : {}),
        buildRef: `kiln/${env.RUNNER_NAME || 'local'}/${env.GITHUB_RUN_ID || 'run'}-${env.GITHUB_RUN_ATTEMPT || '1'}-${digest.slice(7, 19)}`,
      }),
    ),
  );
  core.setOutput('image', images[0] ?? '');
  // buildah-build's outputs: the tags as words, and the first tag.
  core.setOutput('tags', inputs.tags.join(' '));
  core.setOutput('image-with-tag', inputs.tags[0] ?? '');
  core.setOutput('attestation-digest', result.attestations?.manifest ?? '');
  core.setOutput('signatures', (result.signatures ?? []).map((x) => x.tag).join('\n'));
  core.setOutput('isolation', result.isolation.rung);
}

async function build(inputs: ActionInputs, work: string, masks: string[]): Promise<void> {
  const temp = process.env.RUNNER_TEMP || tmpdir();
  const plan = planAction(inputs, { env: process.env, work, temp });
  for (const v of plan.masks) core.setSecret(v);
  masks.push(...plan.masks);
  if (plan.exports.load && !onPath('docker'))
    plan.reports.push({
      level: 'error',
      input: 'load',
      message:
        'no docker CLI on this runner, so there is no daemon to load the image into; write it with outputs: type=docker,dest=image.tar (docker load it where a daemon runs) or push it',
    });
  if (!emitReports(plan)) {
    core.setFailed('kiln: the inputs above cannot be honoured (see their annotations); nothing was built');
    return;
  }
  await setupCache(inputs, plan, plan.context);
  const env = childEnv(inputs, process.env, work);
  const cli = cliPath();
  const launcher = chooseLauncher(process.execPath, await launchFacts(cli, inputs.isolation, env));
  if (launcher.note) core.info(launcher.note);
  const { code, stderr } = await runKiln(cli, plan.args, env, launcher);
  if (code !== 0) {
    core.setOutput('isolation', '');
    const message = redact(lastKilnError(stderr) || 'see the log above', masks);
    const dockerfile = localDockerfile(inputs, plan.context);
    const place = placeOf(message, dockerfile, process.env.GITHUB_WORKSPACE || process.cwd());
    core.error(`kiln build failed (exit ${code}): ${message}`, { title: 'kiln build', ...place });
    process.exitCode = 1;
    return;
  }
  const result = JSON.parse(await readFile(plan.files.resultFile, 'utf8')) as BuildResult;
  await setOutputs(result, plan, inputs);
  core.saveState(STATE.built, 'true');
  await core.summary
    .addHeading('kiln build', 2)
    .addTable(imageTable(result))
    .addHeading('Steps', 3)
    .addTable(stepsTable(result))
    .write();
}

export async function run(): Promise<void> {
  const masks: string[] = [];
  let work = '';
  try {
    for (const name of ['password', 'github-token']) {
      const v = core.getInput(name);
      if (v) {
        core.setSecret(v);
        masks.push(v);
      }
    }
    if (process.env.GITHUB_TOKEN) core.setSecret(process.env.GITHUB_TOKEN);
    const inputs = readInputs((n) => core.getInput(n));
    work = await mkdtemp(join(process.env.RUNNER_TEMP || tmpdir(), 'kiln-action-'));
    await build(inputs, work, masks);
  } catch (e) {
    const text = isKilnError(e) ? e.format() : e instanceof Error ? e.message : String(e);
    core.setFailed(redact(text, masks));
  } finally {
    // The secret value files, the git token and the password file live here.
    if (work) await rm(work, { recursive: true, force: true });
  }
}
