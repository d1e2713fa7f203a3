/**
 * Publishing a multi-platform build, in the same safe order as one image: the files first (the
 * tarball and the OCI layout hold the index and every platform's image), then, per repository,
 * every platform's blobs verified and its manifest pushed by digest, and only once all of them are
 * there the index under every tag; the digest files last, naming the index.
 *
 * With attestations (each platform's SBOM and provenance) the pushed index is BuildKit's: the
 * images, then one attestation manifest per image, each pushed by digest after its image and
 * before the index; the tarball and the OCI layout hold the images alone, as for one image.
 */
import type { Readable } from 'node:stream';
import type { BuiltIndex } from '../image/image-index.ts';
import type { LayerBlob } from '../image/types.ts';
import { formatPlatform, hostPlatform } from '../image/platform.ts';
import { configPlatform } from '../image/image-index.ts';
import { writeDockerArchiveIndex } from '../image/docker-archive.ts';
import { writeOciLayoutIndex } from '../image/oci-layout.ts';
import { writeDigestFiles } from '../image/digest-files.ts';
import { formatReference, parseReference, withDefaultTag, type Reference } from '../registry/reference.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import type { OutputOptions } from '../options.ts';
import type { AttestationBlob } from '../attest/statement.ts';
import { attachToIndex, type AttachedImage } from './attestation-index.ts';
import {
  layerOpener,
  pushAttestationManifests,
  repositories,
  warnAttestationsNotInFiles,
  type Published,
} from './publish.ts';

/** Which image of the index `docker load` tags: the host's platform, else the first. */
function taggedImage(built: BuiltIndex): number {
  const host = formatPlatform(hostPlatform());
  const plain = (s: string): string => s.replace(/\/v8$/, '');
  const i = built.images.findIndex(
    (img) => plain(formatPlatform(configPlatform(img.config))) === plain(host),
  );
  return i < 0 ? 0 : i;
}

export async function publishIndex(
  built: BuiltIndex,
  out: OutputOptions,
  client: RegistryClient | undefined,
  logger: Logger,
  fetchLayer?: (layer: LayerBlob) => Promise<string>,
  /** Each image's statements, in `built.images` order (none: no attestation manifest for it). */
  attestations: AttestationBlob[][] = [],
): Promise<Published> {
  const openLayer = layerOpener(fetchLayer);
  const attached = attestations.some((a) => a.length)
    ? attachToIndex(
        built.index,
        built.images.map((image, i) => ({ image, statements: attestations[i] ?? [] })),
      )
    : undefined;
  const refs = out.destinations.map((d) => withDefaultTag(parseReference(d)));
  const pushedDigest = attached?.indexDigest ?? built.digest;
  for (const r of refs)
    if (r.digest && r.digest !== pushedDigest)
      throw new KilnError(
        'usage',
        'DESTINATION_DIGEST_MISMATCH',
        `cannot push ${formatReference(r)}: the index digest is ${pushedDigest}`,
        { hint: 'push to a tag, or to the digest the index actually has' },
      );
  if (attached) warnAttestationsNotInFiles(out, logger);
  const names = refs.map(formatReference);
  const reader = async (l: LayerBlob): Promise<NodeJS.ReadableStream> => await openLayer(l);
  if (out.tarPath) {
    const tagged = taggedImage(built);
    await writeDockerArchiveIndex(out.tarPath, built, tagged, { repoTags: names, blobReader: reader });
    logger.info(
      `wrote ${out.tarPath}: the index and ${built.images.length} images (docker load takes ${formatPlatform(configPlatform(built.images[tagged]!.config))})`,
    );
  }
  if (out.ociLayoutPath) {
    const tag = refs[0]?.tag ?? 'latest';
    await writeOciLayoutIndex(out.ociLayoutPath, built, { refName: tag, blobReader: reader });
    logger.info(`wrote OCI layout ${out.ociLayoutPath} (ref ${tag}: index of ${built.images.length} images)`);
  }
  const pushing = !out.noPush && refs.length > 0;
  if (pushing) {
    if (!client) throw new KilnError('internal', 'NO_CLIENT', 'no registry client for the push');
    await pushIndex(built, attached, refs, client, logger, openLayer);
  }
  // The digest the tags name: the index with the attestation manifests when they were pushed.
  const digest = pushing && attached ? attached.indexDigest : built.digest;
  await writeDigestFiles({
    digest,
    destinations: names,
    ...(out.digestFile ? { digestFile: out.digestFile } : {}),
    ...(out.imageNameWithDigestFile ? { imageNameWithDigestFile: out.imageNameWithDigestFile } : {}),
    ...(out.imageNameTagWithDigestFile ? { imageNameTagWithDigestFile: out.imageNameTagWithDigestFile } : {}),
  });
  const byImage = pushing && attached ? attached.attestations : [];
  return {
    destinations: names,
    digest,
    ...(byImage[0] ? { attestationDigest: byImage[0].attestation.digest } : {}),
    ...(byImage.length
      ? {
          attestationDigests: Object.fromEntries(
            byImage.map((a) => [a.subject.digest, a.attestation.digest]),
          ),
        }
      : {}),
    repositories: repositories(refs),
  };
}

async function pushIndex(
  built: BuiltIndex,
  attached: AttachedImage | undefined,
  refs: Reference[],
  client: RegistryClient,
  logger: Logger,
  openLayer: (l: LayerBlob) => Promise<Readable>,
): Promise<void> {
  // pushImage verifies every blob of an image before its manifest; the index waits for all of them.
  // The attestation manifests name their images as subject: those are pushed first.
  for (const repo of repositories(refs)) {
    for (const image of built.images)
      await client.pushImage(image, [{ ...repo, digest: image.digest }], openLayer);
    if (attached) await pushAttestationManifests(client, repo, attached.attestations);
  }
  const bytes = attached?.indexBytes ?? built.indexBytes;
  const digest = attached?.indexDigest ?? built.digest;
  const what = built.images.map((i) => formatPlatform(configPlatform(i.config))).join(', ');
  for (const r of refs) {
    await client.putManifest(r, bytes, built.mediaType);
    logger.info(
      `pushed ${formatReference({ ...r, digest: undefined })}@${digest} (index of ${what}${attached ? `, ${attached.attestations.length} attestation manifests` : ''})`,
    );
  }
}
