/**
 * ADD's archive rules: which local files are tar archives (plain or compressed) to be unpacked, and
 * unpacking one into the destination. Detection is by content, as Docker does, never by name.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { extractLayer } from '../../fs/extract.ts';
import { runCommand } from '../../util/command.ts';

export type ArchiveKind = 'tar' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

/** Archive kind from magic bytes: only these are unpacked by ADD. */
export async function archiveKind(path: string): Promise<ArchiveKind | null> {
  const kind = await compressionOf(path);
  if (kind === null) return null;
  // Docker extracts only tar archives: a compressed file that is not a tar inside (note.txt.gz) is
  // copied as it is, and so is a file that merely starts with a compression magic.
  const head = kind === 'tar' ? await readHead(path) : await decompressedHead(path, kind);
  return head !== null && isTarHeader(head) ? kind : null;
}

async function readHead(path: string): Promise<Buffer | null> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    return bytesRead === 512 ? buf : null;
  } finally {
    await fh.close();
  }
}

/** The first 512 decompressed bytes, or null when the stream is shorter or not decodable. */
function decompressedHead(path: string, kind: 'gzip' | 'bzip2' | 'xz' | 'zstd'): Promise<Buffer | null> {
  return new Promise((resolvePromise) => {
    const child = spawn(kind === 'bzip2' ? 'bzip2' : kind, ['-dc', path], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (v: Buffer | null): void => {
      if (done) return;
      done = true;
      child.kill();
      resolvePromise(v);
    };
    child.stdout.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      if (size >= 512) finish(Buffer.concat(chunks).subarray(0, 512));
    });
    child.on('error', () => finish(null));
    child.on('close', () => finish(size >= 512 ? Buffer.concat(chunks).subarray(0, 512) : null));
  });
}

/** A tar header block: its checksum field matches the sum of its bytes (ustar and v7 alike). */
function isTarHeader(h: Buffer): boolean {
  const field = h
    .subarray(148, 156)
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === parseInt(field, 8);
}

async function compressionOf(path: string): Promise<ArchiveKind | null> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(262);
    const { bytesRead } = await fh.read(buf, 0, 262, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'gzip';
    if (bytesRead >= 3 && buf.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    if (bytesRead >= 6 && buf.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
      return 'xz';
    if (bytesRead >= 4 && buf.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'tar';
  } finally {
    await fh.close();
  }
}

async function decompressWith(tool: string, path: string, out: string): Promise<void> {
  const r = await runCommand('sh', ['-c', `${tool} -dc < "$1" > "$2"`, 'sh', path, out], {
    stdout: 'ignore',
  });
  if (r.code !== 0) throw new Error(`${tool}: ${r.stderr.trim()}`);
}

/**
 * Unpacks one archive into `destHost` (created if missing). bzip2 and xz go through their tools
 * into `tmpTar` first, since the extractor reads plain, gzip and zstd tar streams itself.
 */
export async function unpackArchive(archive: string, destHost: string, tmpTar: string): Promise<void> {
  await mkdir(destHost, { recursive: true });
  const kind = await archiveKind(archive);
  let path = archive;
  if (kind === 'bzip2' || kind === 'xz') {
    path = tmpTar;
    await decompressWith(kind, archive, path);
  }
  await extractLayer(createReadStream(path), destHost);
}
