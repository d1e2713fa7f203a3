/**
 * The OCI distribution spec's referrers tag schema (spec.md, "Pushing manifests with subject",
 * "Referrers Tag Schema"): for registries without the referrers API (the Distribution registry
 * among them) the referrers of `<alg>:<hex>` are listed in an image index tagged `<alg>-<hex>`.
 * kiln always maintains that tag: on a registry with the API it is a harmless extra listing, and
 * it saves a probe request the API-less registries answer with an error page.
 */
import { canonicalJson } from '../image/digest.ts';
import { MediaType, type Descriptor, type Index, type Manifest } from '../image/types.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { Reference } from '../registry/reference.ts';
import { isKilnError } from '../util/errors.ts';

export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}

/** Adds `referrer` (a manifest whose subject is `subject`) to the subject's fallback tag index. */
export async function addReferrer(
  client: RegistryClient,
  repo: Reference,
  subject: string,
  referrer: { manifest: Manifest; digest: string; size: number },
): Promise<void> {
  const tagRef: Reference = {
    registry: repo.registry,
    repository: repo.repository,
    tag: referrersTag(subject),
  };
  let index: Index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
  try {
    const got = await client.getManifest(tagRef, [MediaType.OciIndex]);
    const parsed = JSON.parse(got.bytes.toString('utf8')) as Index;
    if (Array.isArray(parsed.manifests)) index = { ...parsed, manifests: parsed.manifests };
  } catch (e) {
    if (!isKilnError(e) || e.code !== 'MANIFEST_UNKNOWN') throw e;
  }
  if (index.manifests.some((d) => d.digest === referrer.digest)) return;
  const m = referrer.manifest;
  const desc: Descriptor = {
    mediaType: m.mediaType ?? MediaType.OciManifest,
    digest: referrer.digest,
    size: referrer.size,
    // The spec: artifactType, else the config's media type; annotations copied from the manifest.
    artifactType: m.artifactType ?? m.config.mediaType,
    ...(m.annotations ? { annotations: m.annotations } : {}),
  };
  index.manifests.push(desc);
  await client.putManifest(tagRef, Buffer.from(canonicalJson(index), 'utf8'), MediaType.OciIndex);
}
