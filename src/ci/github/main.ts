/**
 * The GitHub Action's main step: inputs → `kiln build` (the bundled CLI, run as a child process so a
 * user-namespace re-exec works the same as on the command line) → outputs, job summary, and state for
 * the post step. Registry credentials go to the child in KILN_REGISTRY_* variables, never in argv.
 * `run()` is exported without side effects (for @github/local-action); entry-main.ts calls it.
 */
import * as core from '@actions/core';
import * as cache from '@actions/cache';
import * as exec from '@actions/exec';
import { chooseLauncher, launchFacts, stringEnv, type Launcher } from './launcher.ts';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir, platform, arch } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildResult } from '../../result.ts';
import { KilnError, isKilnError } from '../../util/errors.ts';
import { readInputs, toKilnArgs, type ActionInputs } from './inputs.ts';
import { DOCKER_HUB, parseReference } from '../../registry/reference.ts';
import { cacheKeys, listingHash } from './cache-dir.ts';
import { imageTable, metadata, stepsTable } from './summary.ts';

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

/** The Dockerfile the build will read, for the cache key; null for remote contexts. */
function localDockerfile(inputs: ActionInputs): string | null {
  if (/^[a-z]+:\/\//.test(inputs.context) || inputs.context.startsWith('git@')) return null;
  const ctx = inputs.context.replace(/^dir:\/\//, '');
  if (inputs.file) {
    if (existsSync(inputs.file)) return inputs.file;
    return isAbsolute(inputs.file) ? inputs.file : join(ctx, inputs.file);
  }
  return join(ctx, 'Dockerfile');
}

async function dockerfileHash(inputs: ActionInputs): Promise<string> {
  const path = localDockerfile(inputs);
  const h = createHash('sha256');
  if (path === null) {
    h.update(`${inputs.context}\0${inputs.file}`);
  } else {
    if (!existsSync(path) || !statSync(path).isFile()) {
      throw new KilnError('context', 'NO_DOCKERFILE', `Dockerfile not found: ${path}`, {
        hint: inputs.file
          ? 'check the file input (a path relative to the workspace or to the context)'
          : `put a Dockerfile in the context (${inputs.context}) or set the file input`,
      });
    }
    h.update(await readFile(path));
  }
  return h.digest('hex').slice(0, 16);
}

/** Explicit credentials for the child's environment (KILN_REGISTRY*), masked in the log. */
export function credentialEnv(inputs: ActionInputs, env: NodeJS.ProcessEnv): Record<string, string> {
  if (inputs.username || inputs.password) {
    if (!inputs.username || !inputs.password)
      throw new KilnError(
        'usage',
        'BAD_INPUT',
        `input ${inputs.username ? 'password' : 'username'} is empty`,
        {
          hint: 'give both username and password, or neither (then the Docker config is used)',
        },
      );
    return {
      KILN_REGISTRY: inputs.registry || registryOf(inputs.tags[0] ?? ''),
      KILN_REGISTRY_USERNAME: inputs.username,
      KILN_REGISTRY_PASSWORD: inputs.password,
    };
  }
  // ghcr.io with the workflow token, when the workflow passes GITHUB_TOKEN in the environment.
  const wantsGhcr = inputs.registry === 'ghcr.io' || inputs.tags.some((t) => registryOf(t) === 'ghcr.io');
  if (wantsGhcr && env.GITHUB_TOKEN) {
    return {
      KILN_REGISTRY: 'ghcr.io',
      KILN_REGISTRY_USERNAME: env.GITHUB_ACTOR || 'x-access-token',
      KILN_REGISTRY_PASSWORD: env.GITHUB_TOKEN,
    };
  }
  return {};
}

/** The `error: ...` block kiln printed last (its message and hint), for the failure annotation. */
export function lastKilnError(stderr: string): string {
  const lines = stderr.replace(/\r/g, '').split('\n');
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/^(error|internal error): /.test(lines[i]!)) {
      start = i;
      break;
    }
  }
  if (start === -1) {
    return (
      lines
        .filter((l) => l.trim() !== '')
        .slice(-1)[0]
        ?.trim() ?? ''
    );
  }
  const out = [lines[start]!.replace(/^error: /, '')];
  for (const l of lines.slice(start + 1)) {
    if (/^\s+hint: /.test(l)) out.push(l.trim());
    else break;
  }
  return out.join('\n');
}

/** Registry host of a tag, by the reference parser builds use (docker.io when there is no tag). */
function registryOf(ref: string): string {
  return ref === '' ? DOCKER_HUB : parseReference(ref).registry;
}

/** Runs the CLI with its output streamed to the job log, keeping the tail of stderr for the annotation. */
async function runKiln(
  cli: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  launcher: Launcher = { argv: [process.execPath] },
): Promise<{ code: number; stderr: string }> {
  const [cmd, ...pre] = launcher.argv as [string, ...string[]];
  let stderr = '';
  try {
    const code = await exec.exec(cmd, [...pre, cli, 'build', ...args], {
      env: stringEnv(env),
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

async function readOptional(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return '';
  }
}

async function restore(dir: string, primary: string, restoreKeys: string[]): Promise<void> {
  try {
    const hit = await cache.restoreCache([dir], primary, restoreKeys);
    core.info(hit ? `kiln cache restored from ${hit}` : 'kiln cache: no entry yet');
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (cache.isFeatureAvailable()) core.warning(`kiln cache not restored: ${msg}`);
    else core.info(`kiln cache not restored (no cache service here): ${msg}`);
  }
}

export async function run(): Promise<void> {
  try {
    const password = core.getInput('password');
    if (password) core.setSecret(password);
    if (process.env.GITHUB_TOKEN) core.setSecret(process.env.GITHUB_TOKEN);
    const inputs = readInputs((n) => core.getInput(n));
    const temp = process.env.RUNNER_TEMP || tmpdir();
    const work = await mkdtemp(join(temp, 'kiln-action-'));
    const files = {
      digestFile: join(work, 'digest'),
      imageNameWithDigestFile: join(work, 'image-name-with-digest'),
      resultFile: join(work, 'result.json'),
      ...(inputs.cache ? { cacheDir: resolve(inputs.cacheDir || join(temp, 'kiln-cache')) } : {}),
    };
    const dfHash = await dockerfileHash(inputs);

    if (files.cacheDir) {
      const keys = cacheKeys(
        inputs.cacheKey,
        `${platform()}-${arch()}`,
        dfHash,
        process.env.GITHUB_RUN_ID ?? '',
        process.env.GITHUB_RUN_ATTEMPT ?? '',
      );
      await restore(files.cacheDir, keys.primary, keys.restore);
      core.saveState(STATE.cacheDir, files.cacheDir);
      core.saveState(STATE.cacheKey, keys.primary);
      core.saveState(STATE.cacheHash, await listingHash(files.cacheDir));
    }

    const args = toKilnArgs(inputs, files);
    const env: NodeJS.ProcessEnv = { ...process.env, ...credentialEnv(inputs, process.env) };
    delete env.INPUT_PASSWORD;
    const cli = cliPath();
    const launcher = chooseLauncher(process.execPath, await launchFacts(cli, inputs.isolation, env));
    if (launcher.note) core.info(launcher.note);
    const { code, stderr } = await runKiln(cli, args, env, launcher);
    if (code !== 0) {
      core.setOutput('isolation', '');
      core.setFailed(`kiln build failed (exit ${code}): ${lastKilnError(stderr) || 'see the log above'}`);
      return;
    }

    const result = JSON.parse(await readFile(files.resultFile, 'utf8')) as BuildResult;
    const digest = (await readOptional(files.digestFile)) || result.digest;
    const images = (await readOptional(files.imageNameWithDigestFile)).split('\n').filter(Boolean);
    core.setOutput('digest', digest);
    core.setOutput('image', images[0] ?? '');
    core.setOutput('imageid', result.imageId);
    core.setOutput('metadata', JSON.stringify(metadata(result)));
    core.setOutput('attestation-digest', result.attestations?.manifest ?? '');
    core.setOutput('signatures', (result.signatures ?? []).map((x) => x.tag).join('\n'));
    core.setOutput('isolation', result.isolation.rung);
    core.saveState(STATE.built, 'true');

    await core.summary
      .addHeading('kiln build', 2)
      .addTable(imageTable(result, result.pushed ? images : []))
      .addHeading('Steps', 3)
      .addTable(stepsTable(result))
      .write();
  } catch (e) {
    core.setFailed(isKilnError(e) ? e.format() : e instanceof Error ? e.message : String(e));
  }
}
