/**
 * Pushes: blobs (skipped when present, mounted across repositories of one registry, else uploaded
 * and HEAD-verified, restarted from a fresh stream on failure), manifests, and whole images whose
 * manifest is written only once every blob it references is verified present. go-containerregistry's
 * `remote` writer is the model.
 */
import { pipeline, Readable } from 'node:stream';
import { MediaType } from '../image/types.ts';
import type { BuiltImage, Descriptor, LayerBlob } from '../image/types.ts';
import { meterStream, shortSubject } from '../log/transfer.ts';
import type { TransferMeter } from '../log/transfer.ts';
import { KilnError } from '../util/errors.ts';
import { formatReference, normalizeRegistry } from './reference.ts';
import type { Reference } from './reference.ts';
import type { RegistrySession } from './session.ts';
import { describeError, drain, header, isRetryableError, readBody, sleep } from './transport.ts';
import { Uploader } from './upload.ts';
import type { BlobOpener, UploadSizes } from './upload.ts';
import { digestOf } from './verify.ts';

const PUSH_CONCURRENCY = 3;

export type PushBlobResult = 'exists' | 'mounted' | 'uploaded';

interface PendingBlob {
  desc: Descriptor;
  open: BlobOpener;
  mountFrom?: string;
}

async function runPool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

export class Pusher {
  private readonly uploader: Uploader;

  constructor(
    private readonly session: RegistrySession,
    sizes: UploadSizes,
  ) {
    this.uploader = new Uploader(session, sizes);
  }

  /** Size of a blob in the repository, or undefined when it is not there. */
  private async headBlob(ref: Reference, digest: string): Promise<number | undefined> {
    const req = this.uploader.pushReq(ref, {
      method: 'HEAD',
      path: `blobs/${digest}`,
      followRedirects: true,
    });
    const res = await this.session.api(req);
    await drain(res);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await this.session.statusError(req, res, `HEAD blob ${digest}`);
    const len = Number(header(res, 'content-length'));
    return Number.isFinite(len) ? len : -1;
  }

  async blobExists(ref: Reference, digest: string): Promise<boolean> {
    return (await this.headBlob(ref, digest)) !== undefined;
  }

  mountBlob(
    ref: Reference,
    digest: string,
    fromRepo: string,
  ): Promise<{ mounted: boolean; location?: string }> {
    return this.uploader.mountBlob(ref, digest, fromRepo);
  }

  /**
   * Pushes a blob unless the repository has it: mount when `mountFrom` names another repository of
   * the same registry, else a monolithic PUT (small blobs) or chunked PATCHes. Verified with HEAD;
   * failed attempts restart the upload from a fresh stream.
   */
  async pushBlob(
    ref: Reference,
    descriptor: Descriptor,
    open: BlobOpener,
    opts: { mountFrom?: string } = {},
  ): Promise<PushBlobResult> {
    const size = await this.headBlob(ref, descriptor.digest);
    if (size !== undefined) return 'exists';
    const metered = this.metered(ref, descriptor, open);
    try {
      const how = await this.pushBlobAttempts(ref, descriptor, metered.open, opts);
      metered.meter?.end(true);
      return how;
    } finally {
      metered.meter?.end(false);
    }
  }

  /** The opener with its bytes counted for the progress display, from the first upload on. */
  private metered(
    ref: Reference,
    desc: Descriptor,
    open: BlobOpener,
  ): { open: BlobOpener; meter: TransferMeter | undefined } {
    const progress = this.session.progress;
    if (!progress) return { open, meter: undefined };
    const out: { open: BlobOpener; meter: TransferMeter | undefined } = { open, meter: undefined };
    out.open = async () => {
      out.meter ??= progress.begin({
        phase: 'push',
        subject: shortSubject(ref.registry, ref.repository),
        blob: desc.digest,
        total: desc.size,
      });
      // pipeline: an error of the source reaches the consumer, a consumer's destroy the source.
      return pipeline(await open(), meterStream(out.meter), () => undefined);
    };
    return out;
  }

  private async pushBlobAttempts(
    ref: Reference,
    descriptor: Descriptor,
    open: BlobOpener,
    opts: { mountFrom?: string },
  ): Promise<PushBlobResult> {
    const retries = Math.max(0, this.session.opts.pushRetry);
    let mountTried = false;
    for (let attempt = 0; ; attempt++) {
      try {
        let location: string;
        if (opts.mountFrom && opts.mountFrom !== ref.repository && !mountTried) {
          mountTried = true;
          const m = await this.uploader.mountBlob(ref, descriptor.digest, opts.mountFrom);
          if (m.mounted) {
            await this.verifyPushed(ref, descriptor);
            return 'mounted';
          }
          location = m.location!;
        } else {
          location = await this.uploader.startUpload(ref);
        }
        await this.uploader.upload(ref, descriptor, location, open);
        await this.verifyPushed(ref, descriptor);
        return 'uploaded';
      } catch (e) {
        const again =
          isRetryableError(e) ||
          (e instanceof KilnError && ['BLOB_VERIFY_FAILED', 'UPLOAD_REJECTED'].includes(e.code));
        if (!again || attempt >= retries) {
          if (e instanceof KilnError) throw e;
          throw new KilnError(
            'registry',
            'BLOB_UPLOAD_FAILED',
            `uploading ${descriptor.digest} to ${ref.registry}/${ref.repository} failed: ${describeError(e)}`,
            { hint: 'check the network connection to the registry and retry', cause: e },
          );
        }
        const d = this.session.retryDelay(attempt, e);
        this.session.logger?.warn(
          `upload of ${descriptor.digest.slice(0, 19)} failed (${e instanceof Error ? e.message : String(e)}); restarting in ${d} ms`,
        );
        await sleep(d);
      }
    }
  }

  private async verifyPushed(ref: Reference, desc: Descriptor): Promise<void> {
    const size = await this.headBlob(ref, desc.digest);
    if (size === undefined || (size >= 0 && size !== desc.size)) {
      throw new KilnError(
        'registry',
        'BLOB_VERIFY_FAILED',
        `${ref.registry}/${ref.repository} does not have ${desc.digest} (${desc.size} bytes) after the upload`,
        { hint: 'the registry lost or truncated the upload; retry the push' },
      );
    }
  }

  /**
   * PUTs a manifest under a tag or digest and checks what the registry stored (its
   * Docker-Content-Digest, or a HEAD of the reference): a body the registry rejected as invalid or
   * stored with another digest was corrupted on the way, and is PUT again, up to --push-retry times.
   * Returns the manifest's digest.
   */
  async putManifest(ref: Reference, bytes: Buffer, mediaType: string): Promise<string> {
    const digest = digestOf(bytes);
    const retries = Math.max(0, this.session.opts.pushRetry);
    const stored: string[] = [];
    for (let attempt = 0; ; attempt++) {
      let got: string | undefined;
      try {
        got = await this.putManifestOnce(ref, bytes, mediaType);
      } catch (e) {
        const again = isRetryableError(e) || (e instanceof KilnError && e.code === 'MANIFEST_REJECTED');
        if (!again || attempt >= retries) throw e;
        this.warnRetry(ref, e instanceof Error ? e.message : String(e), attempt, retries);
        await sleep(this.session.retryDelay(attempt, e));
        continue;
      }
      if (got === undefined || got === digest) {
        if (stored.length > 0) {
          this.session.logger?.warn(
            `${formatReference(ref)}: re-pushed the manifest after the registry stored corrupted copies (${stored.join(', ')}); they stay untagged until the registry's garbage collection`,
          );
        }
        return digest;
      }
      stored.push(got);
      if (attempt >= retries) throw await this.storedMismatch(ref, bytes, mediaType, stored);
      this.warnRetry(
        ref,
        `the registry stored the manifest as ${got}, kiln sent ${digest}`,
        attempt,
        retries,
      );
      await sleep(this.session.retryDelay(attempt));
    }
  }

  private warnRetry(ref: Reference, why: string, attempt: number, retries: number): void {
    this.session.logger?.warn(
      `manifest ${formatReference(ref)}: ${why}; PUT again (${attempt + 1}/${retries})`,
    );
  }

  /** One manifest PUT; returns the digest the registry says it stored, when it says. */
  private async putManifestOnce(
    ref: Reference,
    bytes: Buffer,
    mediaType: string,
  ): Promise<string | undefined> {
    const reference = ref.tag ?? ref.digest ?? 'latest';
    const req = this.uploader.pushReq(ref, {
      method: 'PUT',
      path: `manifests/${reference}`,
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    const res = await this.session.api(req);
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) {
      const err = await this.session.statusError(req, res, `PUT manifest ${formatReference(ref)}`);
      // Every blob was verified present before the PUT: an invalid manifest or unknown blob means
      // the registry read other bytes than kiln sent.
      // Distribution answers some of these with a 500 (an unknown blob found while validating).
      if (
        (res.status === 400 || res.status >= 500) &&
        /MANIFEST_INVALID|MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN|DIGEST_INVALID/.test(err.message)
      ) {
        throw new KilnError('registry', 'MANIFEST_REJECTED', err.message, {
          hint: rejectionHint(err.message, mediaType),
          cause: err,
        });
      }
      throw err;
    }
    await drain(res);
    const reported = header(res, 'docker-content-digest');
    if (reported) return reported;
    const head = this.uploader.pushReq(ref, {
      method: 'HEAD',
      path: `manifests/${reference}`,
      headers: { accept: mediaType },
    });
    const h = await this.session.api(head);
    await drain(h);
    return h.status === 200 ? header(h, 'docker-content-digest') : undefined;
  }

  /**
   * The error after every PUT stored another manifest than kiln's. A stored copy of the same length
   * is kiln's manifest with bytes changed on the way (a rewrite by the registry changes the
   * length): the tag, which now names that corrupted copy, is removed (best effort) so that nobody
   * pulls it.
   */
  private async storedMismatch(
    ref: Reference,
    bytes: Buffer,
    mediaType: string,
    stored: string[],
  ): Promise<KilnError> {
    const digest = digestOf(bytes);
    const last = stored[stored.length - 1]!;
    const copy = await this.fetchStored(ref, last, mediaType);
    const corrupted = copy === undefined ? new Set(stored).size > 1 : copy.length === bytes.length;
    const removed = corrupted && (await this.deleteManifest(ref, last));
    return new KilnError(
      'registry',
      corrupted ? 'MANIFEST_CORRUPTED' : 'DIGEST_MISMATCH',
      `${formatReference(ref)}: the registry stored the manifest as ${stored.join(', ')}; kiln sent ${digest} (${stored.length} PUTs)`,
      {
        hint: corrupted
          ? `the manifest was corrupted between kiln and the registry on every attempt (check proxies and the network); ${removed ? 'the corrupted copy was deleted' : `the tag may name the corrupted copy ${last}: push again`}`
          : 'the registry stores its own form of the manifest (it rewrites manifests); push with the other --format or use another registry',
      },
    );
  }

  /** The manifest the registry stored under `digest`, or undefined when it cannot be read. */
  private async fetchStored(ref: Reference, digest: string, mediaType: string): Promise<Buffer | undefined> {
    const req = this.uploader.pushReq(ref, {
      method: 'GET',
      path: `manifests/${digest}`,
      headers: { accept: mediaType },
    });
    try {
      const res = await this.session.api(req);
      if (res.status !== 200) {
        await drain(res);
        return undefined;
      }
      return await readBody(res, 16 << 20);
    } catch {
      return undefined;
    }
  }

  /** DELETE of a manifest by digest; false when the registry does not allow it. */
  private async deleteManifest(ref: Reference, digest: string): Promise<boolean> {
    const req = this.uploader.pushReq(ref, { method: 'DELETE', path: `manifests/${digest}` });
    try {
      const res = await this.session.api(req);
      await drain(res);
      return res.status === 202 || res.status === 200;
    } catch {
      return false;
    }
  }

  /**
   * Pushes an image: config and layers (3 at a time, mounting layers from other repositories of the
   * same registry), then HEAD-checks every blob, and only then writes the manifest for each reference.
   */
  async pushImage(
    image: BuiltImage,
    refs: Reference[],
    open: (layer: LayerBlob) => Readable | Promise<Readable>,
  ): Promise<string> {
    const mediaType = image.manifest.mediaType ?? MediaType.OciManifest;
    for (const group of groupByRepository(image, refs)) {
      const target = group[0]!;
      const blobs = blobsToPush(image, target, open);
      await runPool(blobs, PUSH_CONCURRENCY, async (b) => {
        const how = await this.pushBlob(
          target,
          b.desc,
          b.open,
          b.mountFrom ? { mountFrom: b.mountFrom } : {},
        );
        this.session.logger?.debug(
          `blob ${b.desc.digest.slice(0, 19)} ${how} in ${target.registry}/${target.repository}`,
        );
      });
      // Never write a manifest whose blobs are not all there.
      for (const b of blobs) await this.verifyPushed(target, b.desc);
      for (const r of group) {
        await this.putManifest(
          r.tag || r.digest ? r : { ...r, tag: 'latest' },
          image.manifestBytes,
          mediaType,
        );
        this.session.logger?.info(`pushed ${formatReference({ ...r, digest: undefined })}@${image.digest}`);
      }
    }
    return image.digest;
  }
}

/**
 * Why a registry refused a manifest whose blobs it has: a registry that names the media type does
 * not take it (the other --format may do); otherwise it read other bytes than kiln sent.
 */
function rejectionHint(message: string, mediaType: string): string {
  if (/media.?type|unsupported|schema/i.test(message)) {
    return `the registry does not accept ${mediaType} manifests: push with the other --format`;
  }
  return 'every blob the manifest names was verified present, so the registry read other bytes than kiln sent: the manifest was corrupted on the way (check proxies and the network between kiln and the registry)';
}

/** The references grouped by registry and repository (one blob push per group). */
function groupByRepository(image: BuiltImage, refs: Reference[]): Reference[][] {
  const groups = new Map<string, Reference[]>();
  for (const r of refs) {
    if (r.digest && r.digest !== image.digest) {
      throw new KilnError(
        'usage',
        'DESTINATION_DIGEST_MISMATCH',
        `cannot push ${formatReference(r)}: the image digest is ${image.digest}`,
        { hint: 'push to a tag, or to the digest the image actually has' },
      );
    }
    const k = `${normalizeRegistry(r.registry)}/${r.repository}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()];
}

/** Config and distinct layers, each layer mounted from its source repository when on the same registry. */
function blobsToPush(
  image: BuiltImage,
  target: Reference,
  open: (layer: LayerBlob) => Readable | Promise<Readable>,
): PendingBlob[] {
  const blobs: PendingBlob[] = [
    { desc: image.manifest.config, open: () => Readable.from([image.configBytes]) },
  ];
  const seen = new Set<string>([image.manifest.config.digest]);
  for (const layer of image.layers) {
    if (seen.has(layer.descriptor.digest)) continue;
    seen.add(layer.descriptor.digest);
    const src = layer.source;
    const mountFrom =
      src &&
      normalizeRegistry(src.registry) === normalizeRegistry(target.registry) &&
      src.repository !== target.repository
        ? src.repository
        : undefined;
    blobs.push({ desc: layer.descriptor, open: () => open(layer), ...(mountFrom ? { mountFrom } : {}) });
  }
  return blobs;
}
