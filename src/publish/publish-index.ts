/**
 * Publishing a multi-platform build, in the same safe order as one image: the files first (the
 * tarball and the OCI layout hold the index and every platform's image), then, per repository,
 * every platform's blobs verified and its manifest pushed by digest, and only once all of them are
 * there the index under every tag; the digest files last, naming the index.
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
import { layerOpener, repositories, type Published } from './publish.ts';

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
): Promise<Published> {
  const openLayer = layerOpener(fetchLayer);
  const refs = out.destinations.map((d) => withDefaultTag(parseReference(d)));
  for (const r of refs)
    if (r.digest && r.digest !== built.digest)
      throw new KilnError(
        'usage',
        'DESTINATION_DIGEST_MISMATCH',
        `cannot push ${formatReference(r)}: the index digest is ${built.digest}`,
        { hint: 'push to a tag, or to the digest the index actually has' },
      );
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
  if (!out.noPush && refs.length > 0) {
    if (!client) throw new KilnError('internal', 'NO_CLIENT', 'no registry client for the push');
    await pushIndex(built, refs, client, logger, openLayer);
  }
  await writeDigestFiles({
    digest: built.digest,
    destinations: names,
    ...(out.digestFile ? { digestFile: out.digestFile } : {}),
    ...(out.imageNameWithDigestFile ? { imageNameWithDigestFile: out.imageNameWithDigestFile } : {}),
    ...(out.imageNameTagWithDigestFile ? { imageNameTagWithDigestFile: out.imageNameTagWithDigestFile } : {}),
  });
  return { destinations: names, digest: built.digest, repositories: repositories(refs) };
}

async function pushIndex(
  built: BuiltIndex,
  refs: Reference[],
  client: RegistryClient,
  logger: Logger,
  openLayer: (l: LayerBlob) => Promise<Readable>,
): Promise<void> {
  // pushImage verifies every blob of an image before its manifest; the index waits for all of them.
  for (const repo of repositories(refs))
    for (const image of built.images)
      await client.pushImage(image, [{ ...repo, digest: image.digest }], openLayer);
  for (const r of refs) {
    await client.putManifest(r, built.indexBytes, built.mediaType);
    logger.info(
      `pushed ${formatReference({ ...r, digest: undefined })}@${built.digest} (index of ${built.images.map((i) => formatPlatform(configPlatform(i.config))).join(', ')})`,
    );
  }
}
