/**
 * The parts of a build that depend on how many target platforms it has: one plan per platform,
 * the check that every platform with a RUN step can execute here, assembling one image per
 * platform, and publishing one image (exactly as a single-platform build always did) or an index.
 */
import type { BuildOptions } from './options.ts';
import type { BuildResult } from './result.ts';
import type { Logger } from './log/logger.ts';
import { KilnError } from './util/errors.ts';
import { planFromText } from './plan/plan.ts';
import { runPlatforms } from './plan/stage-platform.ts';
import { formatPlatform, hostPlatform, parsePlatformList } from './image/platform.ts';
import type { BuiltImage, LayerBlob, Platform } from './image/types.ts';
import { assembleImage } from './image/assemble.ts';
import { assembleIndex } from './image/image-index.ts';
import { emulationFor } from './isolation/emulation.ts';
import type { PlatformTarget } from './executor/platforms.ts';
import type { ExecutedImage } from './executor/executor.ts';
import { publishIndex } from './publish/publish-index.ts';
import { pushSignatures } from './sign/sign-image.ts';
import type { RegistryClient } from './registry/client.ts';
import type { SupplyChain } from './supply-chain.ts';

/** The target platforms asked for (the host's when none), and whether any was asked for. */
export function targetPlatforms(opts: BuildOptions): { platforms: Platform[]; explicit: boolean } {
  const asked = parsePlatformList(opts.platforms);
  return asked.length
    ? { platforms: asked, explicit: true }
    : { platforms: [hostPlatform()], explicit: false };
}

/** One plan per target platform: TARGETPLATFORM and everything expanded from it differ. */
export function planTargets(
  text: string,
  file: string,
  opts: BuildOptions,
  platforms: Platform[],
  buildPlatform: Platform,
): PlatformTarget[] {
  return platforms.map((platform) => ({
    platform,
    plan: planFromText(text, file, {
      buildArgs: opts.buildArgs,
      ...(opts.target ? { target: opts.target } : {}),
      targetPlatform: platform,
      buildPlatform,
      namedContexts: opts.namedContexts,
    }),
  }));
}

/** Refuses what a build of several platforms cannot do yet, before any work. */
export function checkMultiPlatformOptions(opts: BuildOptions, count: number): void {
  if (count < 2) return;
  const { sbom, provenance, sbomOutput, provenanceOutput } = opts.attest;
  if (sbom || provenance || sbomOutput || provenanceOutput)
    throw new KilnError(
      'usage',
      'BAD_ATTEST',
      `SBOM and provenance are made for one platform's image: this build has ${count} platforms`,
      {
        hint: 'build with one --platform for attestations, or drop --attest / --sbom-output / --provenance-output',
      },
    );
}

/**
 * Every platform a needed stage RUNs a command on must execute here (natively, or through a
 * binfmt_misc entry with the F flag); else the build fails now, naming the platform and its first RUN.
 */
export function checkEmulation(targets: PlatformTarget[], buildPlatform: Platform, logger: Logger): void {
  for (const need of runPlatforms(targets)) {
    const e = emulationFor(need.platform, buildPlatform);
    if (e.ok) {
      if (e.how === 'binfmt') logger.info(`RUN for ${e.platform}: emulated through ${e.reason}`);
      continue;
    }
    throw new KilnError(
      'isolation',
      'PLATFORM_CANNOT_RUN',
      `RUN steps for ${e.platform} cannot execute on this ${formatPlatform(buildPlatform)} host: ${e.reason}`,
      {
        position: need.at,
        hint: `register QEMU for ${e.platform} with the F flag (docker/setup-qemu-action, tonistiigi/binfmt, or Debian's qemu-user-static), or build the stage FROM --platform=$BUILDPLATFORM; kiln probe lists what runs here`,
      },
    );
  }
}

/** One image per executed platform; a variant asked for is written into the image's config. */
export function assemblePlatforms(
  opts: BuildOptions,
  executed: ExecutedImage[],
  explicit: boolean,
): BuiltImage[] {
  return executed.map((e) => {
    const config = { ...e.config };
    if (explicit && e.platform.variant && executed.length > 1) config.variant = e.platform.variant;
    return assembleImage({
      config,
      layers: e.layers,
      format: opts.output.format,
      ...(Object.keys(opts.annotations).length ? { annotations: opts.annotations } : {}),
    });
  });
}

/** The index of every platform's image published (signed when asked); what the build result says. */
export async function publishPlatforms(
  opts: BuildOptions,
  images: BuiltImage[],
  client: RegistryClient,
  logger: Logger,
  fetchLayer: (layer: LayerBlob) => Promise<string>,
  supply: SupplyChain,
): Promise<Pick<BuildResult, 'digest' | 'destinations' | 'platforms' | 'signatures'>> {
  const built = assembleIndex(images, opts.output.format);
  const published = await publishIndex(built, opts.output, client, logger, fetchLayer);
  const platforms = images.map((img) => ({
    platform: formatPlatform({
      os: img.config.os,
      architecture: img.config.architecture,
      ...(img.config.variant ? { variant: img.config.variant } : {}),
    }),
    digest: img.digest,
  }));
  for (const p of platforms) logger.info(`image ${p.platform}: ${p.digest}`);
  logger.info(`index digest ${built.digest}`);
  const out: Pick<BuildResult, 'digest' | 'destinations' | 'platforms' | 'signatures'> = {
    digest: published.digest,
    destinations: published.destinations,
    platforms,
  };
  if (supply.signer)
    out.signatures = await pushSignatures(
      supply.signer,
      client,
      published.repositories,
      [built.digest, ...images.map((i) => i.digest)],
      logger,
    );
  return out;
}
