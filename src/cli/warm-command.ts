/**
 * `kiln warm`: Kaniko's warmer. Pulls base images (given with -i, or found in the FROM lines of a
 * Dockerfile with -d) into `<cache-dir>/base/` for later builds with the same --cache-dir. Its
 * registry and logging flags are the build's own, read through the same table.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { Logger, colorFor } from '../log/logger.ts';
import { warmImages } from '../cache/base-cache.ts';
import { RegistryClient } from '../registry/client.ts';
import { CredentialStore } from '../registry/credentials.ts';
import { formatPlatform, hostPlatform, parsePlatformList } from '../image/platform.ts';
import type { Platform } from '../image/types.ts';
import { stagePlatform } from '../plan/stage-platform.ts';
import { planFromText } from '../plan/plan.ts';
import { KilnError } from '../util/errors.ts';
import { WARM_FLAGS } from './flag-table.ts';
import { addFlags } from './build-flags.ts';
import { buildOutput, transferBoard } from './progress.ts';
import { keyValues } from './flag-values.ts';
import { cliSettings, compatNotes, readFlags, readWarmFlags, registryOptions } from './to-options.ts';

export interface WarmTarget {
  image: string;
  platform: Platform;
}

/**
 * The images every stage of a Dockerfile starts from (or copies from), as its build args make them,
 * each for the platform its stage is built for: the target's, or the host's for a stage
 * `FROM --platform=$BUILDPLATFORM`.
 */
export async function dockerfileBaseImages(
  path: string,
  buildArgs: Record<string, string>,
  target: Platform,
): Promise<WarmTarget[]> {
  const text = await readFile(path, 'utf8').catch((e: unknown) => {
    throw new KilnError('context', 'DOCKERFILE_NOT_FOUND', `cannot read Dockerfile ${path}`, {
      hint: 'pass --dockerfile with the path of the Dockerfile the build will use',
      cause: e,
    });
  });
  const plan = planFromText(text, path, { buildArgs, targetPlatform: target, buildPlatform: hostPlatform() });
  const out = new Map<string, WarmTarget>();
  for (const s of plan.stages) {
    const platform = stagePlatform(plan, s.index, target);
    for (const image of [...(s.base.kind === 'image' ? [s.base.ref] : []), ...s.imageDeps])
      out.set(`${image}\0${formatPlatform(platform)}`, { image, platform });
  }
  return [...out.values()];
}

/** Every image for every platform asked for (and what their Dockerfile stages need). */
async function warmTargets(
  w: ReturnType<typeof readWarmFlags>,
  platforms: Platform[],
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<WarmTarget[]> {
  const out = new Map<string, WarmTarget>();
  const add = (t: WarmTarget): void => void out.set(`${t.image}\0${formatPlatform(t.platform)}`, t);
  for (const platform of platforms) {
    for (const image of w.image) add({ image, platform });
    if (!w.dockerfile) continue;
    const found = await dockerfileBaseImages(
      w.dockerfile,
      keyValues(w.buildArg, 'build-arg', env, true),
      platform,
    );
    logger.info(
      `warm: ${w.dockerfile} for ${formatPlatform(platform)} starts from ${found.map((f) => `${f.image} (${formatPlatform(f.platform)})`).join(', ') || 'no image'}`,
    );
    found.forEach(add);
  }
  return [...out.values()];
}

export function addWarmCommand(program: Command, out: (s: string) => void, env = process.env): void {
  const warm = addFlags(
    program
      .command('warm')
      .description("pull base images into <cache-dir>/base for later builds (Kaniko's warmer)")
      .exitOverride(),
    WARM_FLAGS,
  );
  warm.action(async (o: Record<string, unknown>) => {
    const w = readWarmFlags(o);
    const shared = readFlags(o);
    const settings = cliSettings(shared);
    const view = buildOutput(settings);
    const sink = (line: string): void => view.write(`${line}\n`);
    const logger = new Logger({ ...settings.log, color: colorFor(process.stderr), sink });
    for (const note of compatNotes(w, WARM_FLAGS)) logger.warn(note);
    const asked = parsePlatformList([...(w.platform ?? []), ...(w.customPlatform ?? [])]);
    const platforms = asked.length ? asked : [hostPlatform()];
    const targets = await warmTargets(w, platforms, env, logger);
    if (targets.length === 0)
      throw new KilnError('usage', 'NO_IMAGES', 'kiln warm needs at least one --image or a --dockerfile', {
        hint: 'pass e.g. --image debian:bookworm, or --dockerfile Dockerfile',
      });
    const transfers = transferBoard(view, logger, settings.progress.intervalMs);
    const registry = registryOptions(shared, env);
    for (const c of registry.credentials) logger.addSecret(c.password);
    const client = new RegistryClient({
      registry,
      credentials: new CredentialStore({ explicit: {} }),
      logger,
      progress: transfers,
    });
    try {
      // One platform prints `image digest` as before; several name the platform of each line.
      const several = new Set(targets.map((t) => formatPlatform(t.platform))).size > 1;
      for (const t of targets) {
        const [digest] = await warmImages(client, [t.image], w.cacheDir, t.platform, {
          force: w.force === true,
          logger,
        });
        out(several ? `${t.image} ${formatPlatform(t.platform)} ${digest}\n` : `${t.image} ${digest}\n`);
      }
    } finally {
      transfers.close();
      await client.close();
    }
  });
}
