/**
 * Finds the package metadata files of an image's final filesystem by streaming its layer tars (the
 * blobs kiln pushes), never extracting them: each layer is read once, only the few metadata files
 * are kept in memory, and whiteouts of later layers remove what earlier ones added.
 */
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { PassThrough } from 'node:stream';
import tar from 'tar-stream';
import { zstdDecompress } from '../fs/zstd.ts';
import { KilnError } from '../util/errors.ts';
import {
  metadataKind,
  parseApkInstalled,
  parseDpkgStatus,
  parseNpmLock,
  parseNpmPackageJson,
  parseOsRelease,
  parsePythonMetadata,
  type Distro,
  type Package,
} from './packages.ts';

/** A metadata file larger than this is not read (a dpkg status of 5,000 packages is ~6 MB). */
const MAX_METADATA_BYTES = 64 << 20;
const SCAN_CONCURRENCY = 2;

export interface ScanLayer {
  mediaType: string;
  open: () => Promise<Readable>;
}

interface LayerFindings {
  files: Map<string, Buffer>;
  /** Paths removed by `.wh.<name>` entries. */
  whiteouts: string[];
  /** Directories whose lower contents an `.wh..wh..opq` entry hides. */
  opaque: string[];
}

function imagePath(name: string): string {
  return posix.normalize(`/${name}`).replace(/\/+$/, '') || '/';
}

function decoder(mediaType: string): NodeJS.ReadWriteStream {
  if (/gzip/.test(mediaType)) return createGunzip();
  if (/zstd/.test(mediaType)) return zstdDecompress();
  return new PassThrough();
}

async function readEntry(
  entry: AsyncIterable<unknown> & { resume(): unknown },
  limit: number,
): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of entry) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      entry.resume();
      return undefined;
    }
    parts.push(b);
  }
  return Buffer.concat(parts);
}

async function scanOne(layer: ScanLayer): Promise<LayerFindings> {
  const found: LayerFindings = { files: new Map(), whiteouts: [], opaque: [] };
  const body = await layer.open();
  const dec = decoder(layer.mediaType);
  const ex = tar.extract();
  body.on('error', (e) => (dec as unknown as Readable).destroy(e));
  (dec as unknown as Readable).on('error', (e: Error) => ex.destroy(e));
  body.pipe(dec).pipe(ex as unknown as NodeJS.WritableStream);
  for await (const entry of ex) {
    const h = entry.header;
    const path = imagePath(h.name);
    const base = posix.basename(path);
    if (base === '.wh..wh..opq') found.opaque.push(posix.dirname(path));
    else if (base.startsWith('.wh.')) found.whiteouts.push(posix.join(posix.dirname(path), base.slice(4)));
    else if (metadataKind(path)) {
      if (h.type === 'file' || h.type === 'contiguous-file') {
        const data = await readEntry(entry, MAX_METADATA_BYTES);
        if (data) found.files.set(path, data);
        continue;
      }
      // A hard link to a file of the same layer (tar stores the data once).
      const target = h.type === 'link' && h.linkname ? found.files.get(imagePath(h.linkname)) : undefined;
      if (target) found.files.set(path, target);
      else found.files.delete(path);
    }
    entry.resume();
  }
  return found;
}

function under(path: string, dir: string): boolean {
  return dir === '/' || path === dir || path.startsWith(`${dir}/`);
}

/** The metadata files of the final filesystem: layers applied in order, whiteouts honoured. */
export async function scanLayers(layers: ScanLayer[]): Promise<Map<string, Buffer>> {
  const results: LayerFindings[] = new Array<LayerFindings>(layers.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < layers.length; i = next++) results[i] = await scanOne(layers[i]!);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, layers.length) }, worker));
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new KilnError(
      'fs',
      'SBOM_SCAN_FAILED',
      `reading the image layers for the SBOM failed: ${String(e)}`,
      {
        hint: 'a layer blob is unreadable or not a tar archive',
        cause: e,
      },
    );
  }
  const files = new Map<string, Buffer>();
  for (const r of results) {
    for (const dir of r.opaque)
      for (const p of [...files.keys()]) if (under(p, dir) && p !== dir) files.delete(p);
    for (const w of r.whiteouts) for (const p of [...files.keys()]) if (under(p, w)) files.delete(p);
    for (const [p, b] of r.files) files.set(p, b);
  }
  return files;
}

export interface Inventory {
  distro?: Distro;
  packages: Package[];
}

/** The packages the metadata files describe, deduplicated and sorted (stable SBOM bytes). */
export function inventory(files: Map<string, Buffer>): Inventory {
  let distro: Distro | undefined;
  const osRelease = files.get('/etc/os-release') ?? files.get('/usr/lib/os-release');
  if (osRelease) distro = parseOsRelease(osRelease.toString('utf8'));
  const all: Package[] = [];
  for (const [path, data] of files) {
    const text = data.toString('utf8');
    switch (metadataKind(path)) {
      case 'dpkg':
        all.push(...parseDpkgStatus(text, path));
        break;
      case 'apk':
        all.push(...parseApkInstalled(text, path));
        break;
      case 'npm-lock':
        all.push(...parseNpmLock(text, path));
        break;
      case 'npm-package':
        all.push(...parseNpmPackageJson(text, path));
        break;
      case 'python':
        all.push(...parsePythonMetadata(text, path));
        break;
      default:
        break;
    }
  }
  // One entry per type/name/version/arch: a lockfile and the installed package.json say the same.
  const byKey = new Map<string, Package>();
  for (const p of all) {
    const key = `${p.type}\0${p.name}\0${p.version}\0${p.arch ?? ''}`;
    const had = byKey.get(key);
    if (!had) {
      byKey.set(key, p);
      continue;
    }
    const keep = p.location < had.location ? p : had;
    const license = keep.license ?? had.license ?? p.license;
    byKey.set(key, license ? { ...keep, license } : keep);
  }
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  const packages = [...byKey.values()].sort(
    (a, b) =>
      cmp(a.type, b.type) ||
      cmp(a.name, b.name) ||
      cmp(a.version, b.version) ||
      cmp(a.arch ?? '', b.arch ?? ''),
  );
  return distro ? { distro, packages } : { packages };
}
