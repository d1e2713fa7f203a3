/**
 * kiln's OCI distribution client: one session (transport, auth, API calls) shared by the puller
 * (pull.ts: manifests, platform selection, verified blobs) and the pusher (push.ts, upload.ts:
 * blobs, manifests, images). This class only wires them together for callers that do both.
 */
import type { Readable, Writable } from 'node:stream';
import type { BuiltImage, Descriptor, LayerBlob, Platform } from '../image/types.ts';
import type { Reference } from './reference.ts';
import { Puller } from './pull.ts';
import type { ManifestResult, ResolvedImage } from './pull.ts';
import { Pusher } from './push.ts';
import type { PushBlobResult } from './push.ts';
import { RegistrySession, type SessionOptions } from './session.ts';
import type { Transport } from './transport.ts';
import type { BlobOpener } from './upload.ts';

export { DEFAULT_ACCEPT } from './pull.ts';
export type { ManifestResult, ResolvedImage } from './pull.ts';
export type { PushBlobResult } from './push.ts';
export type { BlobOpener } from './upload.ts';
export { choosePlatform, formatPlatform, normalizeArch, platformMatches } from './platform-match.ts';

export interface RegistryClientOptions extends SessionOptions {
  /** Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks. Default 8 MiB. */
  monolithicMaxBytes?: number;
  /** PATCH chunk size for chunked uploads. Default 64 MiB. */
  chunkSizeBytes?: number;
}

export class RegistryClient {
  readonly transport: Transport;
  private readonly session: RegistrySession;
  private readonly puller: Puller;
  private readonly pusher: Pusher;

  constructor(opts: RegistryClientOptions) {
    this.session = new RegistrySession(opts);
    this.transport = this.session.transport;
    this.puller = new Puller(this.session);
    this.pusher = new Pusher(this.session, {
      monolithicMax: opts.monolithicMaxBytes ?? 8 << 20,
      // Each PATCH streams from the source, so a large chunk costs no memory, only fewer round trips.
      chunkSize: opts.chunkSizeBytes ?? 64 << 20,
    });
  }

  /** Closes pooled connections. */
  close(): Promise<void> {
    return this.session.close();
  }

  /** Hosts to pull from, in order: docker.io mirrors, registry-map mirrors, then the source. */
  pullHosts(ref: Reference): string[] {
    return this.session.pullHosts(ref);
  }

  getManifest(ref: Reference, accept?: string[]): Promise<ManifestResult> {
    return this.puller.getManifest(ref, accept);
  }

  resolveImage(ref: Reference, platform: Platform): Promise<ResolvedImage> {
    return this.puller.resolveImage(ref, platform);
  }

  fetchBlob(repoRef: Reference, descriptor: Descriptor, destPath: string, reader?: Writable): Promise<void> {
    return this.puller.fetchBlob(repoRef, descriptor, destPath, reader);
  }

  openBlob(repoRef: Reference, descriptor: Descriptor): Promise<Readable> {
    return this.puller.openBlob(repoRef, descriptor);
  }

  blobExists(ref: Reference, digest: string): Promise<boolean> {
    return this.pusher.blobExists(ref, digest);
  }

  mountBlob(
    ref: Reference,
    digest: string,
    fromRepo: string,
  ): Promise<{ mounted: boolean; location?: string }> {
    return this.pusher.mountBlob(ref, digest, fromRepo);
  }

  pushBlob(
    ref: Reference,
    descriptor: Descriptor,
    open: BlobOpener,
    opts?: { mountFrom?: string },
  ): Promise<PushBlobResult> {
    return this.pusher.pushBlob(ref, descriptor, open, opts);
  }

  putManifest(ref: Reference, bytes: Buffer, mediaType: string): Promise<string> {
    return this.pusher.putManifest(ref, bytes, mediaType);
  }

  pushImage(
    image: BuiltImage,
    refs: Reference[],
    open: (layer: LayerBlob) => Readable | Promise<Readable>,
  ): Promise<string> {
    return this.pusher.pushImage(image, refs, open);
  }
}
