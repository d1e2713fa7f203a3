/**
 * Test base images as one-image OCI layouts (what skopeo pushes and kiln's --from oci-layout reads):
 * gzip layers already on disk, a config with fixed times, one index entry with a ref name. Built in
 * a temp dir beside the destination and renamed in, so parallel test files can race for it safely.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

export interface LayoutImage {
  /** gzip-compressed layer tarballs, bottom first. */
  layers: string[];
  /** The image config's `config` part (Env, Cmd, User, ...). */
  config: Record<string, unknown>;
  architecture: string;
  variant?: string;
  /** `created_by` of the one history entry per layer. */
  createdBy: string;
  /** `org.opencontainers.image.ref.name` of the index entry. */
  refName: string;
}

async function sha256Of(path: string, gunzip: boolean): Promise<string> {
  const h = createHash('sha256');
  if (gunzip) await pipeline(createReadStream(path), createGunzip(), h);
  else await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

async function writeBlob(layout: string, data: string): Promise<{ digest: string; size: number }> {
  const buf = Buffer.from(data);
  const hex = createHash('sha256').update(buf).digest('hex');
  await writeFile(join(layout, 'blobs', 'sha256', hex), buf);
  return { digest: `sha256:${hex}`, size: buf.length };
}

/** Layers, config and manifest of one image into the layout's blobs; returns the manifest's index entry. */
async function writeImage(work: string, img: LayoutImage): Promise<Record<string, unknown>> {
  const layers: Array<{ mediaType: string; digest: string; size: number }> = [];
  const diffIds: string[] = [];
  for (const file of img.layers) {
    const hex = await sha256Of(file, false);
    await copyFile(file, join(work, 'blobs', 'sha256', hex));
    layers.push({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: `sha256:${hex}`,
      size: (await stat(file)).size,
    });
    diffIds.push(`sha256:${await sha256Of(file, true)}`);
  }
  const platform = {
    architecture: img.architecture,
    os: 'linux',
    ...(img.variant ? { variant: img.variant } : {}),
  };
  const created = '1970-01-01T00:00:00Z';
  const config = await writeBlob(
    work,
    JSON.stringify({
      created,
      ...platform,
      config: img.config,
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: img.layers.map(() => ({ created, created_by: img.createdBy })),
    }),
  );
  const manifest = await writeBlob(
    work,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers,
    }),
  );
  return { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform };
}

/** Builds the layout in a temp dir beside `dest` and renames it in (a concurrent identical build may win). */
async function writeLayout(
  dest: string,
  fill: (work: string) => Promise<Record<string, unknown>>,
  refName: string,
): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const work = await mkdtemp(`${dest}.tmp-`);
  try {
    await mkdir(join(work, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const entry = await fill(work);
    await writeFile(
      join(work, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ ...entry, annotations: { 'org.opencontainers.image.ref.name': refName } }],
      }),
    );
    try {
      await rename(work, dest);
    } catch (e) {
      // Another process won the race: its layout is identical in content.
      if (!existsSync(join(dest, 'index.json'))) throw e;
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function writeImageLayout(dest: string, img: LayoutImage): Promise<void> {
  return writeLayout(dest, (work) => writeImage(work, img), img.refName);
}

/**
 * One ref name for an image index of several platforms (what `skopeo copy --all` pushes as a
 * multi-platform image); each image's own refName is not used.
 */
export function writeMultiPlatformLayout(dest: string, refName: string, imgs: LayoutImage[]): Promise<void> {
  return writeLayout(
    dest,
    async (work) => {
      const manifests: Array<Record<string, unknown>> = [];
      for (const img of imgs) manifests.push(await writeImage(work, img));
      const index = await writeBlob(
        work,
        JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
      );
      return { mediaType: 'application/vnd.oci.image.index.v1+json', ...index };
    },
    refName,
  );
}
