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
import { hostPlatform, parsePlatform } from '../image/platform.ts';
import { planFromText } from '../plan/plan.ts';
import { KilnError } from '../util/errors.ts';
import { WARM_FLAGS } from './flag-table.ts';
import { addFlags } from './build-flags.ts';
import { buildOutput, transferBoard } from './progress.ts';
import { keyValues } from './flag-values.ts';
import { cliSettings, compatNotes, readFlags, readWarmFlags, registryOptions } from './to-options.ts';

/** The images every stage of a Dockerfile starts from (or copies from), as its build args make them. */
export async function dockerfileBaseImages(
  path: string,
  buildArgs: Record<string, string>,
  platform: string,
): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((e: unknown) => {
    throw new KilnError('context', 'DOCKERFILE_NOT_FOUND', `cannot read Dockerfile ${path}`, {
      hint: 'pass --dockerfile with the path of the Dockerfile the build will use',
      cause: e,
    });
  });
  const p = parsePlatform(platform);
  const plan = planFromText(text, path, { buildArgs, targetPlatform: p, buildPlatform: hostPlatform() });
  const refs = plan.stages.flatMap((s) => [...(s.base.kind === 'image' ? [s.base.ref] : []), ...s.imageDeps]);
  return [...new Set(refs)];
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
    const platform = w.platform ?? w.customPlatform ?? undefined;
    const target = platform ? parsePlatform(platform) : hostPlatform();
    const images = [...w.image];
    if (w.dockerfile) {
      const found = await dockerfileBaseImages(
        w.dockerfile,
        keyValues(w.buildArg, 'build-arg', env, true),
        platform ?? `${target.os}/${target.architecture}${target.variant ? `/${target.variant}` : ''}`,
      );
      logger.info(`warm: ${w.dockerfile} starts from ${found.join(', ') || 'no image'}`);
      images.push(...found.filter((i) => !images.includes(i)));
    }
    if (images.length === 0)
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
      const digests = await warmImages(client, images, w.cacheDir, target, {
        force: w.force === true,
        logger,
      });
      images.forEach((img, i) => out(`${img} ${digests[i]}\n`));
    } finally {
      transfers.close();
      await client.close();
    }
  });
}
