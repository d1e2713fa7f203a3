/**
 * The outputs of a build, in a safe order: files first (tarball, OCI layout), then the push of every
 * destination (blobs verified before any manifest), then the digest files, which must only exist
 * when the image they name does.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { BuiltImage, LayerBlob } from '../image/types.ts';
import { writeDockerArchive } from '../image/docker-archive.ts';
import { writeOciLayout } from '../image/oci-layout.ts';
import { writeDigestFiles } from '../image/digest-files.ts';
import { formatReference, parseReference, withDefaultTag } from '../registry/reference.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';
import type { OutputOptions } from '../options.ts';

export async function publish(
  image: BuiltImage,
  out: OutputOptions,
  client: RegistryClient | undefined,
  logger: Logger,
  /** Downloads a base layer the build never needed on disk (fully cached stages). */
  fetchLayer?: (layer: LayerBlob) => Promise<string>,
): Promise<string[]> {
  const openLayer = async (layer: LayerBlob): Promise<Readable> => {
    if (!layer.path && fetchLayer && layer.source) layer.path = await fetchLayer(layer);
    if (!layer.path) {
      throw new KilnError('internal', 'LAYER_NOT_LOCAL', `layer ${layer.descriptor.digest} is not on disk`);
    }
    return createReadStream(layer.path);
  };
  const refs = out.destinations.map((d) => withDefaultTag(parseReference(d)));
  const names = refs.map(formatReference);
  const reader = async (l: LayerBlob): Promise<NodeJS.ReadableStream> => await openLayer(l);
  if (out.tarPath) {
    await writeDockerArchive(out.tarPath, image, { repoTags: names.length ? names : [], blobReader: reader });
    logger.info(`wrote docker-archive ${out.tarPath}`);
  }
  if (out.ociLayoutPath) {
    const tag = refs[0]?.tag ?? 'latest';
    await writeOciLayout(out.ociLayoutPath, image, { refName: tag, blobReader: reader });
    logger.info(`wrote OCI layout ${out.ociLayoutPath} (ref ${tag})`);
  }
  if (!out.noPush && refs.length > 0) {
    if (!client) throw new KilnError('internal', 'NO_CLIENT', 'no registry client for the push');
    await client.pushImage(image, refs, (l) => openLayer(l));
  }
  await writeDigestFiles({
    digest: image.digest,
    destinations: names,
    ...(out.digestFile ? { digestFile: out.digestFile } : {}),
    ...(out.imageNameWithDigestFile ? { imageNameWithDigestFile: out.imageNameWithDigestFile } : {}),
    ...(out.imageNameTagWithDigestFile ? { imageNameTagWithDigestFile: out.imageNameTagWithDigestFile } : {}),
  });
  return names;
}
