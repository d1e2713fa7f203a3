/**
 * Writes a built image into an OCI image layout directory (`--oci-layout-path`): creates the
 * layout or adds to an existing one. Blobs are streamed to a temporary file, verified against
 * their digest and size, then renamed into place, so a failed write never leaves a partial blob.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { KilnError } from '../util/errors.ts';
import { canonicalJson, digestHex, DigestStream } from './digest.ts';
import {
  MediaType,
  type BuiltImage,
  type Descriptor,
  type Digest,
  type Index,
  type LayerBlob,
} from './types.ts';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
const LAYOUT_FILE_CONTENT = '{"imageLayoutVersion":"1.0.0"}';

export type BlobReader = (layer: LayerBlob) => Promise<NodeJS.ReadableStream>;

export interface OciLayoutOptions {
  /** Stored as the `org.opencontainers.image.ref.name` annotation of the index entry. */
  refName?: string;
  blobReader: BlobReader;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function fsError(what: string, path: string, cause: unknown): KilnError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new KilnError('fs', 'OCI_LAYOUT_WRITE', `cannot ${what} ${path}: ${detail}`, {
    hint: 'check that the --oci-layout-path directory is writable and has free space',
    cause,
  });
}

function tempName(dir: string, hex: string): string {
  return join(dir, `.tmp-${hex.slice(0, 12)}-${randomBytes(6).toString('hex')}`);
}

/** Writes bytes as a blob (atomically) unless it is already there. */
async function writeBytesBlob(blobDir: string, digest: Digest, bytes: Buffer): Promise<void> {
  const hex = digestHex(digest);
  const dest = join(blobDir, hex);
  if (await exists(dest)) return;
  const tmp = tempName(blobDir, hex);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, dest);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw fsError('write blob', dest, err);
  }
}

/** Streams a layer into the layout, verifying digest and size before it gets its final name. */
async function writeStreamBlob(blobDir: string, layer: LayerBlob, blobReader: BlobReader): Promise<void> {
  const { digest, size } = layer.descriptor;
  const hex = digestHex(digest);
  const dest = join(blobDir, hex);
  if (await exists(dest)) return;
  const tmp = tempName(blobDir, hex);
  const ds = new DigestStream();
  try {
    const src = await blobReader(layer);
    await pipeline(src, ds, createWriteStream(tmp, { mode: 0o644 }));
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    if (err instanceof KilnError) throw err;
    throw fsError('write blob', dest, err);
  }
  const got = ds.digest();
  if (got !== digest || ds.size !== size) {
    await unlink(tmp).catch(() => undefined);
    throw new KilnError(
      'fs',
      'BLOB_CORRUPT',
      `layer blob ${digest} read back as ${got} (${ds.size} bytes, expected ${size})`,
      { hint: 'the layer file changed or is corrupt; remove it from the cache and build again' },
    );
  }
  try {
    await rename(tmp, dest);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw fsError('write blob', dest, err);
  }
}

async function readIndex(path: string): Promise<Index> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
  }
  try {
    const idx = JSON.parse(text) as Index;
    if (!idx || typeof idx !== 'object' || !Array.isArray(idx.manifests))
      throw new Error('no manifests array');
    return idx;
  } catch (err) {
    throw new KilnError('fs', 'OCI_LAYOUT_INVALID', `${path} is not a valid OCI index`, {
      hint: 'point --oci-layout-path at an empty directory or an existing OCI image layout',
      cause: err,
    });
  }
}

async function ensureLayoutFile(dir: string): Promise<void> {
  const path = join(dir, 'oci-layout');
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    text = undefined;
  }
  if (text === undefined) {
    try {
      await writeFile(path, LAYOUT_FILE_CONTENT);
    } catch (err) {
      throw fsError('write', path, err);
    }
    return;
  }
  let version: unknown;
  try {
    version = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch {
    version = undefined;
  }
  if (typeof version !== 'string' || !version.startsWith('1.')) {
    throw new KilnError(
      'fs',
      'OCI_LAYOUT_INVALID',
      `${path} does not declare a supported imageLayoutVersion`,
      {
        hint: 'point --oci-layout-path at an empty directory or an OCI image layout version 1.x',
      },
    );
  }
}

async function openLayout(dir: string): Promise<string> {
  const blobDir = join(dir, 'blobs', 'sha256');
  try {
    await mkdir(blobDir, { recursive: true });
  } catch (err) {
    throw fsError('create', blobDir, err);
  }
  await ensureLayoutFile(dir);
  return blobDir;
}

async function writeImageBlobs(blobDir: string, image: BuiltImage, blobReader: BlobReader): Promise<void> {
  for (const layer of image.layers) await writeStreamBlob(blobDir, layer, blobReader);
  await writeBytesBlob(blobDir, image.manifest.config.digest, image.configBytes);
  await writeBytesBlob(blobDir, image.digest, image.manifestBytes);
}

/** Creates or adds to the OCI image layout at `dir`; returns the index entry written. */
export async function writeOciLayout(
  dir: string,
  image: BuiltImage,
  opts: OciLayoutOptions,
): Promise<Descriptor> {
  const blobDir = await openLayout(dir);
  await writeImageBlobs(blobDir, image, opts.blobReader);
  const entry: Descriptor = {
    mediaType: image.manifest.mediaType ?? MediaType.OciManifest,
    digest: image.digest,
    size: image.manifestBytes.length,
  };
  if (opts.refName !== undefined || image.descriptorAnnotations)
    entry.annotations = {
      ...image.descriptorAnnotations,
      ...(opts.refName !== undefined ? { [REF_NAME_ANNOTATION]: opts.refName } : {}),
    };
  await addIndexEntry(dir, entry, opts.refName, image.indexAnnotations);
  return entry;
}

/**
 * Adds a multi-platform image to the layout: every platform's blobs and manifest, the image index
 * as a blob, and an entry in index.json naming that index.
 */
export async function writeOciLayoutIndex(
  dir: string,
  built: { images: BuiltImage[]; indexBytes: Buffer; digest: Digest; mediaType: string },
  opts: OciLayoutOptions,
): Promise<Descriptor> {
  const blobDir = await openLayout(dir);
  for (const image of built.images) await writeImageBlobs(blobDir, image, opts.blobReader);
  await writeBytesBlob(blobDir, built.digest, built.indexBytes);
  const entry: Descriptor = {
    mediaType: built.mediaType,
    digest: built.digest,
    size: built.indexBytes.length,
    ...(opts.refName !== undefined ? { annotations: { [REF_NAME_ANNOTATION]: opts.refName } } : {}),
  };
  await addIndexEntry(dir, entry, opts.refName, undefined);
  return entry;
}

/** Replaces the entry of the same ref name (or the same unnamed digest) in index.json. */
async function addIndexEntry(
  dir: string,
  entry: Descriptor,
  refName: string | undefined,
  indexAnnotations: Record<string, string> | undefined,
): Promise<void> {
  const indexPath = join(dir, 'index.json');
  const index = await readIndex(indexPath);
  index.manifests = index.manifests.filter((d) => {
    const ref = d.annotations?.[REF_NAME_ANNOTATION];
    if (refName !== undefined) return ref !== refName;
    // Without a ref name, only an identical unnamed entry is a duplicate.
    return !(ref === undefined && d.digest === entry.digest);
  });
  index.manifests.push(entry);
  if (indexAnnotations) index.annotations = { ...index.annotations, ...indexAnnotations };

  const tmp = tempName(dir, 'index');
  try {
    await writeFile(tmp, canonicalJson(index));
    await rename(tmp, indexPath);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw fsError('write', indexPath, err);
  }
}
