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
import { assembleIndex, configPlatform } from './image/image-index.ts';
import { emulationFor } from './isolation/emulation.ts';
import type { PlatformTarget } from './executor/platforms.ts';
import type { ExecutedImage } from './executor/executor.ts';
import { publishIndex } from './publish/publish-index.ts';
import { pushSignatures } from './sign/sign-image.ts';
import type { RegistryClient } from './registry/client.ts';
import { attestationReport, attestationsFor, type SupplyChain } from './supply-chain.ts';
import type { Attestations } from './attest/attest-image.ts';
import { layerOpener } from './publish/publish.ts';

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

/** What each platform's provenance is made from, besides its own image and steps. */
export interface IndexAttestationInputs {
  dockerfileText: string;
  buildPlatform: Platform;
  started: number;
  /** Every platform's execution, in `images` order. */
  executed: ExecutedImage[];
}

type PublishedIndex = Pick<BuildResult, 'digest' | 'destinations' | 'platforms' | 'signatures'>;

/**
 * Each platform's SBOM and provenance (when asked for), made from its own layers, config and
 * steps, one after the other (each scan streams that image's layers).
 */
async function attestPlatforms(
  opts: BuildOptions,
  images: BuiltImage[],
  inputs: IndexAttestationInputs,
  fetchLayer: (layer: LayerBlob) => Promise<string>,
  supply: SupplyChain,
  logger: Logger,
): Promise<(Attestations | undefined)[]> {
  const out: (Attestations | undefined)[] = [];
  for (const [i, image] of images.entries()) {
    const executed = inputs.executed[i]!;
    const ctx = {
      image,
      dockerfileText: inputs.dockerfileText,
      targetPlatform: executed.platform,
      buildPlatform: inputs.buildPlatform,
      executed,
      started: inputs.started,
      supply,
    };
    out.push(await attestationsFor(opts, ctx, layerOpener(fetchLayer), logger, true));
  }
  return out;
}

/**
 * The index of every platform's image published, with each platform's attestation manifest when
 * asked for (signed when asked: the index, every image and every attestation manifest); what the
 * build result says.
 */
export async function publishPlatforms(
  opts: BuildOptions,
  images: BuiltImage[],
  client: RegistryClient,
  logger: Logger,
  fetchLayer: (layer: LayerBlob) => Promise<string>,
  supply: SupplyChain,
  inputs: IndexAttestationInputs,
): Promise<PublishedIndex> {
  const built = assembleIndex(images, opts.output.format);
  const atts = await attestPlatforms(opts, images, inputs, fetchLayer, supply, logger);
  const statements = atts.map((a) => a?.statements ?? []);
  const published = await publishIndex(built, opts.output, client, logger, fetchLayer, statements);
  const platforms = images.map((img, i) => {
    const a = atts[i];
    const manifest = published.attestationDigests?.[img.digest];
    return {
      platform: formatPlatform(configPlatform(img.config)),
      digest: img.digest,
      ...(a?.statements.length ? { attestations: attestationReport(a, manifest) } : {}),
    };
  });
  for (const p of platforms)
    logger.info(
      `image ${p.platform}: ${p.digest}${p.attestations?.manifest ? ` (attestations ${p.attestations.manifest})` : ''}`,
    );
  logger.info(`index digest ${published.digest}`);
  const out: PublishedIndex = {
    digest: published.digest,
    destinations: published.destinations,
    platforms,
  };
  if (supply.signer) {
    const attested = Object.values(published.attestationDigests ?? {});
    out.signatures = await pushSignatures(
      supply.signer,
      client,
      published.repositories,
      [published.digest, ...images.map((i) => i.digest), ...attested],
      logger,
    );
  }
  return out;
}
