/**
 * The digest files Kaniko writes after a build, byte for byte:
 * --digest-file: the digest alone, no newline;
 * --image-name-with-digest-file: `repo@digest` per destination, each line ending in a newline;
 * --image-name-tag-with-digest-file: `repo:tag@digest` per destination, each line ending in a newline.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KilnError } from '../util/errors.ts';
import { isDigest } from './digest.ts';
import type { Digest } from './types.ts';

export interface DigestFilesOptions {
  digest: Digest;
  /** Normalised references such as `registry/repo:tag`. */
  destinations: string[];
  digestFile?: string;
  imageNameWithDigestFile?: string;
  imageNameTagWithDigestFile?: string;
}

/** Drops a digest, then the tag (a `:` after the last `/`), keeping a registry port. */
function repoAndTag(ref: string): { repo: string; tag: string } {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const colon = noDigest.lastIndexOf(':');
  if (colon > noDigest.lastIndexOf('/'))
    return { repo: noDigest.slice(0, colon), tag: noDigest.slice(colon + 1) };
  return { repo: noDigest, tag: 'latest' };
}

export function imageNameWithDigest(destinations: string[], digest: Digest): string {
  return destinations.map((d) => `${repoAndTag(d).repo}@${digest}\n`).join('');
}

export function imageNameTagWithDigest(destinations: string[], digest: Digest): string {
  return destinations
    .map((d) => {
      const { repo, tag } = repoAndTag(d);
      return `${repo}:${tag}@${digest}\n`;
    })
    .join('');
}

async function write(path: string, content: string, flag: string): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content, { mode: 0o644 });
  } catch (err) {
    throw new KilnError(
      'fs',
      'DIGEST_FILE_WRITE',
      `cannot write ${flag} ${path}: ${(err as Error).message}`,
      {
        hint: `check that the ${flag} path is writable`,
        cause: err,
      },
    );
  }
}

export async function writeDigestFiles(opts: DigestFilesOptions): Promise<void> {
  if (!isDigest(opts.digest)) {
    throw new KilnError('internal', 'BAD_DIGEST', `not a sha256 digest: ${opts.digest}`);
  }
  if (opts.digestFile) await write(opts.digestFile, opts.digest, '--digest-file');
  if (opts.imageNameWithDigestFile) {
    await write(
      opts.imageNameWithDigestFile,
      imageNameWithDigest(opts.destinations, opts.digest),
      '--image-name-with-digest-file',
    );
  }
  if (opts.imageNameTagWithDigestFile) {
    await write(
      opts.imageNameTagWithDigestFile,
      imageNameTagWithDigest(opts.destinations, opts.digest),
      '--image-name-tag-with-digest-file',
    );
  }
}
