/**
 * The build's supply-chain outputs, between assembly and publish: which attestations the options
 * ask for, filled from the build (plan, executed steps, pinned bases, CI environment), and the
 * files `--sbom-output` / `--provenance-output` ask for.
 */
import { writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { BuildOptions } from './options.ts';
import type { Logger } from './log/logger.ts';
import type { BuiltImage, LayerBlob, Platform } from './image/types.ts';
import { formatPlatform } from './image/platform.ts';
import { sha256Digest } from './image/digest.ts';
import { parseReference, withDefaultTag } from './registry/reference.ts';
import type { AttestationReport, StepReport } from './result.ts';
import { createAttestations, type Attestations } from './attest/attest-image.ts';
import type { BuildResult } from './result.ts';
import { imageSubject, PredicateType } from './attest/statement.ts';
import { publicUrl } from './attest/ci-env.ts';
import { KilnError } from './util/errors.ts';
import { prepareSigner, pushSignatures, type Signer } from './sign/sign-image.ts';
import type { RegistryClient } from './registry/client.ts';
import { layerOpener, publish, type Published } from './publish/publish.ts';

export interface AttestationContext {
  image: BuiltImage;
  dockerfileText: string;
  targetPlatform: Platform;
  buildPlatform: Platform;
  executed: { baseImages: string[]; steps: StepReport[] };
  started: number;
  supply: SupplyChain;
}

/** The clamp of a reproducible build (ISO), or undefined when the build may use the clock. */
export function clampTime(opts: BuildOptions): string | undefined {
  if (opts.timestamp !== undefined) return new Date(opts.timestamp * 1000).toISOString();
  if (opts.reproducible) return new Date(0).toISOString();
  return undefined;
}

function remoteContext(context: string): string | undefined {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(context) ? publicUrl(context) : undefined;
}

/** Refuses what this build cannot do before any work is done. */
export function checkSupplyChainOptions(opts: BuildOptions): void {
  const { sign, attest } = opts;
  if (!sign.enabled && (sign.key || sign.passwordEnv))
    throw new KilnError('usage', 'BAD_ATTEST', '--cosign-key and --cosign-password-env need --sign', {
      hint: 'add --sign, or drop the key flags',
    });
  if (sign.enabled && !sign.key && !sign.idToken && !sign.tokenRequest)
    throw new KilnError(
      'usage',
      'SIGN_NO_IDENTITY',
      '--sign without --cosign-key needs an OIDC token for keyless signing',
      {
        hint: 'pass --cosign-key, or run in CI with an ID token: GitHub `permissions: id-token: write`, GitLab `id_tokens: SIGSTORE_ID_TOKEN: {aud: sigstore}`',
      },
    );
  if (sign.enabled && (opts.output.noPush || opts.output.destinations.length === 0))
    throw new KilnError(
      'usage',
      'BAD_ATTEST',
      '--sign signs what is pushed: it needs a --destination and no --no-push',
      {
        hint: 'add --destination, or drop --sign',
      },
    );
  if ((attest.sbom?.attach || attest.provenance?.attach) && opts.output.format === 'docker')
    throw new KilnError(
      'usage',
      'FORMAT_UNSUPPORTED',
      'attestations need the OCI format (an OCI image index holds them)',
      {
        hint: 'drop --format docker, or --attestation off',
      },
    );
}

export interface SupplyChain {
  signer?: Signer;
}

/**
 * Checks the options and loads the signing key (its password too) before any work, so that a bad
 * key or password fails the build before anything is pushed.
 */
export async function prepareSupplyChain(opts: BuildOptions, logger: Logger): Promise<SupplyChain> {
  checkSupplyChainOptions(opts);
  for (const s of [opts.sign.password, opts.sign.idToken, opts.sign.tokenRequest?.token]) logger.addSecret(s);
  const signer = await prepareSigner(opts.sign, (s) => logger.addSecret(s));
  return signer ? { signer } : {};
}

/**
 * Where `--sbom-output` / `--provenance-output` go for one platform of several: the platform
 * (`os-arch[-variant]`) inserted before the name's extensions, so `sbom.spdx.json` becomes
 * `sbom.linux-arm64.spdx.json`, beside the file named; one platform keeps the name as given.
 */
export function platformOutputPath(file: string, platform: Platform): string {
  const slash = file.lastIndexOf('/');
  const dir = file.slice(0, slash + 1);
  const base = file.slice(slash + 1);
  const dot = base.indexOf('.', 1);
  const tag = formatPlatform(platform).replaceAll('/', '-');
  return dot < 0 ? `${dir}${base}.${tag}` : `${dir}${base.slice(0, dot)}.${tag}${base.slice(dot)}`;
}

async function writeOutputs(
  opts: BuildOptions,
  atts: Attestations,
  platform: Platform | undefined,
  logger: Logger,
): Promise<void> {
  const files: [string | undefined, string | undefined][] = [
    [opts.attest.sbomOutput, atts.sbomDocument],
    [opts.attest.provenanceOutput, atts.provenanceStatement],
  ];
  for (const [file, text] of files) {
    if (!file || text === undefined) continue;
    const path = platform ? platformOutputPath(file, platform) : file;
    await writeFile(path, text);
    if (platform) logger.info(`wrote ${path} (${formatPlatform(platform)})`);
  }
}

/**
 * Attestations for the image, or undefined when none are requested. `perPlatform`: one image of
 * several, whose files get its platform in their names.
 */
export async function attestationsFor(
  opts: BuildOptions,
  ctx: AttestationContext,
  openLayer: (layer: LayerBlob) => Promise<Readable>,
  logger: Logger,
  perPlatform = false,
): Promise<Attestations | undefined> {
  const { sbom, provenance } = opts.attest;
  if (!sbom && !provenance) return undefined;
  const t0 = Date.now();
  const clamp = clampTime(opts);
  const platform = formatPlatform(ctx.targetPlatform);
  const dest = opts.output.destinations[0]
    ? withDefaultTag(parseReference(opts.output.destinations[0]))
    : undefined;
  const repo = dest ? `${dest.registry}/${dest.repository}` : undefined;
  const contextUrl = remoteContext(opts.context);
  const atts = await createAttestations({
    image: ctx.image,
    layers: ctx.image.layers.map((l) => ({
      mediaType: l.descriptor.mediaType,
      open: () => openLayer(l),
    })),
    subject: imageSubject(repo, dest?.tag, platform, ctx.image.digest),
    name: repo ? `${repo}${dest?.tag ? `:${dest.tag}` : ''}` : 'image',
    created: clamp ?? new Date().toISOString(),
    ...(sbom ? { sbom: { format: sbom.format } } : {}),
    ...(provenance
      ? {
          provenance: {
            mode: provenance.mode,
            inputs: {
              dockerfile: {
                path: opts.dockerfile,
                digest: sha256Digest(ctx.dockerfileText),
                text: ctx.dockerfileText,
              },
              ...(opts.target ? { target: opts.target } : {}),
              buildArgs: opts.buildArgs,
              labels: opts.labels,
              platform,
              builderPlatform: formatPlatform(ctx.buildPlatform),
              baseImages: ctx.executed.baseImages,
              ...(contextUrl ? { contextUrl } : {}),
              env: opts.attest.environment,
              steps: ctx.executed.steps.map((s) => ({
                stage: s.stage,
                instruction: s.instruction,
                line: s.line,
              })),
              ...(clamp
                ? {}
                : { startedOn: new Date(ctx.started).toISOString(), finishedOn: new Date().toISOString() }),
              reproducible: clamp !== undefined,
            },
          },
        }
      : {}),
  });
  await writeOutputs(opts, atts, perPlatform ? ctx.targetPlatform : undefined, logger);
  logger.info(
    `attestations${perPlatform ? ` for ${platform}` : ''}: ${[sbom ? `SBOM (${sbom.format}, ${atts.packages ?? 0} packages)` : '', provenance ? `provenance (mode=${provenance.mode})` : ''].filter(Boolean).join(', ')} in ${Date.now() - t0} ms`,
  );
  // Generated for a file only (--sbom-output without --attest type=sbom) is not pushed.
  const attached = new Set<string>();
  if (sbom?.attach) attached.add(sbom.format === 'cyclonedx' ? PredicateType.CycloneDx : PredicateType.Spdx);
  if (provenance?.attach) attached.add(PredicateType.SlsaProvenanceV1);
  return { ...atts, statements: atts.statements.filter((st) => attached.has(st.predicateType)) };
}

/** What the build result says about the attestations. */
export function attestationReport(atts: Attestations, manifest: string | undefined): AttestationReport {
  const statements: Record<string, string> = {};
  for (const s of atts.statements) statements[s.predicateType] = sha256Digest(s.bytes);
  return {
    ...(manifest ? { manifest } : {}),
    statements,
    ...(atts.packages !== undefined ? { packages: atts.packages } : {}),
  };
}

/** Attestations made, then the image published with them: what the build result reports. */
export async function publishWithSupplyChain(
  opts: BuildOptions,
  ctx: AttestationContext,
  client: RegistryClient,
  logger: Logger,
  images: { fetchLayer(layer: LayerBlob): Promise<string> },
): Promise<{
  published: Published;
  report: Pick<BuildResult, 'imageDigest' | 'attestations' | 'signatures'>;
}> {
  const fetchLayer = (l: LayerBlob): Promise<string> => images.fetchLayer(l);
  const atts = await attestationsFor(opts, ctx, layerOpener(fetchLayer), logger);
  const published = await publish(ctx.image, opts.output, client, logger, fetchLayer, atts?.statements);
  logger.info(`image digest ${ctx.image.digest}`);
  const report: Pick<BuildResult, 'imageDigest' | 'attestations' | 'signatures'> = {};
  if (published.digest !== ctx.image.digest) report.imageDigest = ctx.image.digest;
  if (atts?.statements.length) report.attestations = attestationReport(atts, published.attestationDigest);
  const signer = ctx.supply.signer;
  if (signer) {
    // The tags' digest (index or image), the image manifest, and the attestation manifest.
    const digests = [...new Set([published.digest, ctx.image.digest, published.attestationDigest])].filter(
      (d): d is string => d !== undefined,
    );
    report.signatures = await pushSignatures(signer, client, published.repositories, digests, logger);
  }
  return { published, report };
}
