/**
 * `kiln inspect`: what is attached to an image in a registry. Attestation manifests are found in
 * both places kiln (and BuildKit) put them: the tag's image index (entries annotated
 * `vnd.docker.reference.type: attestation-manifest`) and the OCI referrers tag schema
 * (`<repo>:sha256-<hex>`, for registries without the referrers API). Signatures are cosign's
 * `<repo>:sha256-<hex>.sig` for the index, each image manifest and each attestation manifest.
 */
import type { KeyObject } from 'node:crypto';
import type { Readable } from 'node:stream';
import { MediaType, type Descriptor, type Index, type Manifest, type Platform } from '../image/types.ts';
import type { RegistryClient } from '../registry/client.ts';
import { formatReference, parseReference, withDefaultTag, type Reference } from '../registry/reference.ts';
import { isKilnError, KilnError } from '../util/errors.ts';
import {
  ATTESTATION_MANIFEST,
  REFERENCE_DIGEST_ANNOTATION,
  REFERENCE_TYPE_ANNOTATION,
} from '../publish/attestation-index.ts';
import { referrersTag } from '../publish/referrers.ts';
import { signatureTag } from '../sign/simple-signing.ts';
import type { AttestationEntry, InspectReport, ManifestEntry, SignatureEntry } from './report.ts';
import { statementLayers, summarizeStatement } from './statements.ts';
import { checkSignature } from './signature-check.ts';

const ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
];
/** An SBOM of a large image is a few MB; more than this is not a statement kiln should hold. */
const MAX_BLOB = 64 << 20;

async function readBlob(client: RegistryClient, repo: Reference, d: Descriptor): Promise<Buffer> {
  if (d.size > MAX_BLOB)
    throw new KilnError('registry', 'BLOB_TOO_LARGE', `blob ${d.digest} is ${d.size} bytes`, {
      hint: 'an attestation or signature payload this large is not one kiln reads',
    });
  const chunks: Buffer[] = [];
  const stream: Readable = await client.openBlob(repo, d);
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The manifest, or undefined when the registry does not have it. */
async function optionalManifest(
  client: RegistryClient,
  ref: Reference,
): Promise<{ bytes: Buffer; mediaType: string; digest: string } | undefined> {
  try {
    return await client.getManifest(ref, ACCEPT);
  } catch (e) {
    if (isKilnError(e) && e.code === 'MANIFEST_UNKNOWN') return undefined;
    throw e;
  }
}

function platformText(p: Platform | undefined): string | undefined {
  return p ? `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : undefined;
}

function isAttestation(d: Descriptor): boolean {
  return d.annotations?.[REFERENCE_TYPE_ANNOTATION] === ATTESTATION_MANIFEST;
}

async function readAttestation(
  client: RegistryClient,
  repo: Reference,
  digest: string,
  subject: string,
  source: AttestationEntry['sources'][number],
): Promise<AttestationEntry> {
  const got = await client.getManifest({ ...repo, digest }, [MediaType.OciManifest]);
  const m = JSON.parse(got.bytes.toString('utf8')) as Manifest;
  const statements = [];
  for (const l of statementLayers(m)) {
    const bytes = await readBlob(client, repo, {
      mediaType: l.predicateType,
      digest: l.digest,
      size: l.size,
    });
    statements.push(summarizeStatement(l.digest, l.predicateType, bytes));
  }
  return { manifest: digest, subject: m.subject?.digest ?? subject, sources: [source], statements };
}

/** Attestations listed under the referrers tag of each image manifest, merged with the index's. */
async function referrersTagAttestations(
  client: RegistryClient,
  repo: Reference,
  images: string[],
  found: AttestationEntry[],
): Promise<void> {
  for (const image of images) {
    const tagged = await optionalManifest(client, { ...repo, tag: referrersTag(image) });
    if (!tagged) continue;
    const listing = JSON.parse(tagged.bytes.toString('utf8')) as Index;
    for (const d of listing.manifests ?? []) {
      if (!isAttestation(d) && d.artifactType !== MediaType.OciConfig) continue;
      const known = found.find((a) => a.manifest === d.digest);
      if (known) {
        if (!known.sources.includes('referrers-tag')) known.sources.push('referrers-tag');
        continue;
      }
      const att = await readAttestation(client, repo, d.digest, image, 'referrers-tag');
      // A referrer that is not an attestation (no in-toto layer) is someone else's artifact.
      if (att.statements.length) found.push(att);
    }
  }
}

async function signaturesOf(
  client: RegistryClient,
  repo: Reference,
  digests: string[],
  key: KeyObject | undefined,
): Promise<{ signatures: SignatureEntry[]; unsigned: string[] }> {
  const signatures: SignatureEntry[] = [];
  const unsigned: string[] = [];
  for (const digest of digests) {
    const tag = signatureTag(digest);
    const got = await optionalManifest(client, { ...repo, tag });
    if (!got) {
      unsigned.push(digest);
      continue;
    }
    const m = JSON.parse(got.bytes.toString('utf8')) as Manifest;
    for (const layer of m.layers) {
      const payload = await readBlob(client, repo, layer);
      const name = `${formatReference({ ...repo, tag: undefined, digest: undefined })}:${tag}`;
      signatures.push(checkSignature(digest, name, payload, layer.annotations ?? {}, key));
    }
  }
  return { signatures, unsigned };
}

async function singleImagePlatform(
  client: RegistryClient,
  repo: Reference,
  m: Manifest,
): Promise<string | undefined> {
  if (m.config.mediaType !== MediaType.OciConfig && m.config.mediaType !== MediaType.DockerConfig)
    return undefined;
  const config = JSON.parse((await readBlob(client, repo, m.config)).toString('utf8')) as Platform;
  return platformText(config);
}

export async function inspectImage(
  client: RegistryClient,
  image: string,
  key?: KeyObject,
): Promise<InspectReport> {
  const ref = parseReference(image);
  const target = ref.digest ? ref : withDefaultTag(ref);
  const repo: Reference = { registry: ref.registry, repository: ref.repository };
  const top = await client.getManifest(target, ACCEPT);
  const doc = JSON.parse(top.bytes.toString('utf8')) as Index & Manifest;
  const manifests: ManifestEntry[] = [];
  const attestations: AttestationEntry[] = [];
  if (Array.isArray(doc.manifests)) {
    for (const d of doc.manifests) {
      if (isAttestation(d)) {
        const subject = d.annotations?.[REFERENCE_DIGEST_ANNOTATION] ?? '';
        attestations.push(await readAttestation(client, repo, d.digest, subject, 'index'));
        continue;
      }
      const platform = platformText(d.platform);
      manifests.push({
        digest: d.digest,
        mediaType: d.mediaType,
        size: d.size,
        ...(platform ? { platform } : {}),
      });
    }
  } else {
    const platform = await singleImagePlatform(client, repo, doc);
    manifests.push({
      digest: top.digest,
      mediaType: top.mediaType,
      size: top.bytes.length,
      ...(platform ? { platform } : {}),
    });
  }
  await referrersTagAttestations(
    client,
    repo,
    manifests.map((m) => m.digest),
    attestations,
  );
  // Which platform's image each attestation describes (every platform of an index has its own).
  for (const a of attestations) {
    const platform = manifests.find((m) => m.digest === a.subject)?.platform;
    if (platform) a.platform = platform;
  }
  const signed = [
    ...new Set([top.digest, ...manifests.map((m) => m.digest), ...attestations.map((a) => a.manifest)]),
  ];
  const { signatures, unsigned } = await signaturesOf(client, repo, signed, key);
  return {
    reference: formatReference(target),
    digest: top.digest,
    mediaType: top.mediaType,
    manifests,
    attestations,
    unsigned,
    signatures,
  };
}
