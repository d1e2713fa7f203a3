/**
 * Writes a built image as a docker-archive tarball (`--tar-path`), laid out like Docker 25+
 * `docker save`: blobs under blobs/sha256, `manifest.json` and `repositories` for `docker load`,
 * plus `oci-layout` and `index.json` so the same file is also an OCI image layout. Layers are kept
 * compressed as their blobs (docker load and skopeo decompress them) and streamed into the tar,
 * never held in memory; their size comes from the descriptor and is checked with the digest.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { KilnError } from '../util/errors.ts';
import { canonicalJson, digestHex } from './digest.ts';
import type { BlobReader } from './oci-layout.ts';
import { REF_NAME_ANNOTATION } from './oci-layout.ts';
import type { BuiltImage, Descriptor, Index } from './types.ts';
import { MediaType } from './types.ts';

export interface DockerArchiveOptions {
  /** `registry/repo:tag` names recorded in manifest.json and index.json. */
  repoTags: string[];
  blobReader: BlobReader;
}

const EPOCH = new Date(0);

/** Splits `reg:5000/repo:tag` into repository and tag (`latest` when none). */
export function splitRepoTag(ref: string): { repo: string; tag: string } {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  if (colon > slash) return { repo: noDigest.slice(0, colon), tag: noDigest.slice(colon + 1) };
  return { repo: noDigest, tag: 'latest' };
}

function blobPath(digest: string): string {
  return `blobs/sha256/${digestHex(digest)}`;
}

function addBuffer(pack: tar.Pack, name: string, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0 }, data, (err) =>
      err ? reject(err) : resolve(),
    );
  });
}

function addDir(pack: tar.Pack, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name, type: 'directory', mode: 0o755, mtime: EPOCH, uid: 0, gid: 0 }, (err) =>
      err ? reject(err) : resolve(),
    );
  });
}

function mismatch(desc: Descriptor, got: string, size: number): KilnError {
  return new KilnError(
    'fs',
    'BLOB_CORRUPT',
    `layer blob ${desc.digest} read back as ${got} (${size} bytes, expected ${desc.size})`,
    { hint: 'the layer file changed or is corrupt; remove it from the cache and build again' },
  );
}

/** Streams one layer into a tar entry whose size is fixed up front; verifies size and digest. */
async function addLayer(pack: tar.Pack, desc: Descriptor, src: NodeJS.ReadableStream): Promise<void> {
  let entryErr: Error | null | undefined;
  let entryDone!: () => void;
  const finished = new Promise<void>((resolve) => (entryDone = resolve));
  const entry = pack.entry(
    { name: blobPath(desc.digest), size: desc.size, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0 },
    (err) => {
      entryErr = err;
      entryDone();
    },
  );
  const hash = createHash('sha256');
  let n = 0;
  for await (const chunk of src as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    n += buf.length;
    if (n > desc.size) throw mismatch(desc, 'a longer blob', n);
    hash.update(buf);
    if (!entry.write(buf)) await Promise.race([once(entry, 'drain'), finished]);
    if (entryErr) throw entryErr;
  }
  const got = `sha256:${hash.digest('hex')}`;
  if (n !== desc.size || got !== desc.digest) throw mismatch(desc, got, n);
  entry.end(null);
  await finished;
  if (entryErr) throw entryErr;
}

function wrap(tarPath: string, err: unknown): KilnError {
  if (err instanceof KilnError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new KilnError('fs', 'TAR_WRITE', `cannot write image tarball ${tarPath}: ${detail}`, {
    hint: 'check that the --tar-path directory exists, is writable and has free space',
    cause: err,
  });
}

export async function writeDockerArchive(
  tarPath: string,
  image: BuiltImage,
  opts: DockerArchiveOptions,
): Promise<void> {
  const top = {
    mediaType: image.manifest.mediaType ?? MediaType.OciManifest,
    digest: image.digest,
    size: image.manifestBytes.length,
  };
  await writeArchive(tarPath, [image], top, [], 0, opts);
}

/**
 * A multi-platform image: every platform's blobs, the index as a blob and index.json naming it (an
 * OCI layout, as `oci-archive:` reads it), and in manifest.json, for `docker load`, the `tagged` image
 * alone (the host's platform, else the first): docker loads one image per tag.
 */
export async function writeDockerArchiveIndex(
  tarPath: string,
  built: { images: BuiltImage[]; indexBytes: Buffer; digest: string; mediaType: string },
  tagged: number,
  opts: DockerArchiveOptions,
): Promise<void> {
  const top = { mediaType: built.mediaType, digest: built.digest, size: built.indexBytes.length };
  await writeArchive(
    tarPath,
    built.images,
    top,
    [{ digest: built.digest, bytes: built.indexBytes }],
    tagged,
    opts,
  );
}

async function writeArchive(
  tarPath: string,
  images: BuiltImage[],
  top: Descriptor,
  extraBlobs: Array<{ digest: string; bytes: Buffer }>,
  tagged: number,
  opts: DockerArchiveOptions,
): Promise<void> {
  const tmp = join(dirname(tarPath), `.${basename(tarPath)}.tmp-${randomBytes(6).toString('hex')}`);
  const pack = tar.pack();
  const out = createWriteStream(tmp, { mode: 0o644 });
  const piped = pipeline(pack, out);
  // Surface a failed write (no space, no directory) while entries are still being added.
  let pipeErr: unknown;
  piped.catch((err: unknown) => {
    pipeErr = err;
  });

  try {
    await once(out, 'open');
    await addDir(pack, 'blobs/');
    await addDir(pack, 'blobs/sha256/');
    const written = new Set<string>();
    const addBytes = async (digest: string, bytes: Buffer): Promise<void> => {
      if (written.has(digest)) return;
      written.add(digest);
      await addBuffer(pack, blobPath(digest), bytes);
    };
    for (const image of images) {
      for (const layer of image.layers) {
        const d = layer.descriptor;
        if (written.has(d.digest)) continue;
        written.add(d.digest);
        const src = await opts.blobReader(layer);
        await addLayer(pack, d, src);
        if (pipeErr) throw pipeErr;
      }
      await addBytes(image.manifest.config.digest, image.configBytes);
      await addBytes(image.digest, image.manifestBytes);
    }
    for (const b of extraBlobs) await addBytes(b.digest, b.bytes);

    const index: Index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests:
        opts.repoTags.length === 0
          ? [top]
          : opts.repoTags.map((rt) => ({
              ...top,
              annotations: {
                'io.containerd.image.name': rt,
                [REF_NAME_ANNOTATION]: splitRepoTag(rt).tag,
              },
            })),
    };
    await addBuffer(pack, 'index.json', canonicalJson(index));

    // docker load takes one image per tag: the tagged platform's alone.
    const loaded = images[tagged]!;
    const dockerManifest = [
      {
        Config: blobPath(loaded.manifest.config.digest),
        RepoTags: opts.repoTags,
        Layers: loaded.layers.map((l) => blobPath(l.descriptor.digest)),
      },
    ];
    await addBuffer(pack, 'manifest.json', JSON.stringify(dockerManifest));
    await addBuffer(pack, 'oci-layout', '{"imageLayoutVersion":"1.0.0"}');

    const repositories: Record<string, Record<string, string>> = {};
    const last = images[tagged]?.layers.at(-1);
    if (last) {
      for (const rt of opts.repoTags) {
        const { repo, tag } = splitRepoTag(rt);
        (repositories[repo] ??= {})[tag] = digestHex(last.descriptor.digest);
      }
    }
    await addBuffer(pack, 'repositories', JSON.stringify(repositories));

    pack.finalize();
    await piped;
    await rename(tmp, tarPath);
  } catch (err) {
    pack.destroy();
    out.destroy();
    await piped.catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw wrap(tarPath, err);
  }
}
