/**
 * The outputs of a build, in a safe order: files first (tarball, OCI layout), then the push of every
 * destination (blobs verified before any manifest), then the digest files, which must only exist
 * when the image they name does.
 *
 * With attestations the image manifest and the attestation manifest are pushed by digest first and
 * the tags then name the index holding both (BuildKit's layout); without them the tags name the
 * image manifest, exactly as before.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { BuiltImage, LayerBlob } from '../image/types.ts';
import { MediaType } from '../image/types.ts';
import { writeDockerArchive } from '../image/docker-archive.ts';
import { writeOciLayout } from '../image/oci-layout.ts';
import { writeDigestFiles } from '../image/digest-files.ts';
import { formatReference, parseReference, withDefaultTag, type Reference } from '../registry/reference.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import type { OutputOptions } from '../options.ts';
import type { AttestationBlob } from '../attest/statement.ts';
import { attachAttestations, type AttachedImage, type AttestationManifest } from './attestation-index.ts';
import { addReferrer } from './referrers.ts';

export interface Published {
  /** Every destination, with tag, as given. */
  destinations: string[];
  /** What the tags name: the index when attestations are attached, else the image manifest. */
  digest: string;
  /** The attestation manifest, when there is one (the first image's, of an index). */
  attestationDigest?: string;
  /** An index with attestations: each image's attestation manifest, by image digest. */
  attestationDigests?: Record<string, string>;
  /** Repositories pushed to (one per registry/repository), for signing. */
  repositories: Reference[];
}

/** Opens a layer blob, downloading a base layer the build never needed on disk (fully cached stages). */
export function layerOpener(
  fetchLayer?: (layer: LayerBlob) => Promise<string>,
): (layer: LayerBlob) => Promise<Readable> {
  return async (layer) => {
    if (!layer.path && fetchLayer && layer.source) layer.path = await fetchLayer(layer);
    if (!layer.path) {
      throw new KilnError('internal', 'LAYER_NOT_LOCAL', `layer ${layer.descriptor.digest} is not on disk`);
    }
    return createReadStream(layer.path);
  };
}

export function repositories(refs: Reference[]): Reference[] {
  const seen = new Map<string, Reference>();
  for (const r of refs)
    seen.set(`${r.registry}/${r.repository}`, { registry: r.registry, repository: r.repository });
  return [...seen.values()];
}

/**
 * Each attestation manifest pushed by digest into `repo` (its statements verified as blobs first,
 * as every push does) and listed under its image's referrers tag. Its image must be there already.
 */
export async function pushAttestationManifests(
  client: RegistryClient,
  repo: Reference,
  attestations: AttestationManifest[],
): Promise<void> {
  for (const a of attestations) {
    const att = a.attestation;
    await client.pushImage(att, [{ ...repo, digest: att.digest }], (l) =>
      Readable.from([a.blobs.get(l.descriptor.digest)!]),
    );
    await addReferrer(client, repo, a.subject.digest, {
      manifest: att.manifest,
      digest: att.digest,
      size: att.manifestBytes.length,
    });
  }
}

/** Says that the files hold the image(s) alone, and whether the attestations were pushed. */
export function warnAttestationsNotInFiles(out: OutputOptions, logger: Logger): void {
  if (!out.tarPath && !out.ociLayoutPath) return;
  // Not written into the files (BuildKit's OCI exporter does): say where they are, and are not.
  const files = [out.tarPath ? '--tar-path' : '', out.ociLayoutPath ? '--oci-layout-path' : ''].filter(
    Boolean,
  );
  const where =
    !out.noPush && out.destinations.length ? 'are pushed with the image only' : 'are not pushed (no push)';
  logger.warn(
    `attestations ${where}: ${files.join(' and ')} hold the image alone; --sbom-output and --provenance-output write them to files`,
  );
}

async function pushWithAttestations(
  image: BuiltImage,
  attached: AttachedImage,
  refs: Reference[],
  client: RegistryClient,
  openLayer: (l: LayerBlob) => Promise<Readable>,
  logger: Logger,
): Promise<void> {
  for (const repo of repositories(refs)) {
    await client.pushImage(image, [{ ...repo, digest: image.digest }], openLayer);
    await pushAttestationManifests(client, repo, attached.attestations);
  }
  for (const r of refs) {
    await client.putManifest(r, attached.indexBytes, MediaType.OciIndex);
    logger.info(
      `pushed ${formatReference({ ...r, digest: undefined })}@${attached.indexDigest} (image ${image.digest} + attestations)`,
    );
  }
}

export async function publish(
  image: BuiltImage,
  out: OutputOptions,
  client: RegistryClient | undefined,
  logger: Logger,
  fetchLayer?: (layer: LayerBlob) => Promise<string>,
  attestations: AttestationBlob[] = [],
): Promise<Published> {
  const openLayer = layerOpener(fetchLayer);
  const refs = out.destinations.map((d) => withDefaultTag(parseReference(d)));
  const names = refs.map(formatReference);
  const reader = async (l: LayerBlob): Promise<NodeJS.ReadableStream> => await openLayer(l);
  const attached = attestations.length ? attachAttestations(image, attestations) : undefined;
  if (attached) warnAttestationsNotInFiles(out, logger);
  if (out.tarPath) {
    await writeDockerArchive(out.tarPath, image, { repoTags: names.length ? names : [], blobReader: reader });
    logger.info(`wrote docker-archive ${out.tarPath}`);
  }
  if (out.ociLayoutPath) {
    const tag = refs[0]?.tag ?? 'latest';
    await writeOciLayout(out.ociLayoutPath, image, { refName: tag, blobReader: reader });
    logger.info(`wrote OCI layout ${out.ociLayoutPath} (ref ${tag})`);
  }
  const pushing = !out.noPush && refs.length > 0;
  if (pushing) {
    if (!client) throw new KilnError('internal', 'NO_CLIENT', 'no registry client for the push');
    if (attached) await pushWithAttestations(image, attached, refs, client, openLayer, logger);
    else await client.pushImage(image, refs, (l) => openLayer(l));
  }
  // The digest the tags name (what `docker pull`, cosign and build-push-action's output refer to).
  const digest = pushing && attached ? attached.indexDigest : image.digest;
  await writeDigestFiles({
    digest,
    destinations: names,
    ...(out.digestFile ? { digestFile: out.digestFile } : {}),
    ...(out.imageNameWithDigestFile ? { imageNameWithDigestFile: out.imageNameWithDigestFile } : {}),
    ...(out.imageNameTagWithDigestFile ? { imageNameTagWithDigestFile: out.imageNameTagWithDigestFile } : {}),
  });
  return {
    destinations: names,
    digest,
    ...(pushing && attached?.attestations[0]
      ? { attestationDigest: attached.attestations[0].attestation.digest }
      : {}),
    repositories: repositories(refs),
  };
}
