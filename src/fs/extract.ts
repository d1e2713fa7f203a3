/**
 * Applies one OCI layer (tar, tar+gzip or tar+zstd, sniffed from its first bytes) onto a rootfs
 * directory, streamed entry by entry. Every path is resolved chroot-style inside the root (see
 * resolveInRoot), so `..`, absolute names and symlinks pointing out of the root cannot make an
 * entry land outside it; a hardlink whose target leaves the root is refused.
 */
import {
  chmodSync,
  closeSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { resolveInRoot, resolveInRootSync } from './rootpath.ts';
import { KilnError } from '../util/errors.ts';
import { runCommand } from '../util/command.ts';
import { applyXattrs } from './xattr.ts';
import { zstdDecompress } from './zstd.ts';

export interface ExtractOptions {
  /**
   * Told of each whiteout once it has been applied: `path` is the image path that was deleted
   * (`/etc/foo`), or the directory that was made opaque.
   */
  onWhiteout?: (path: string, kind: 'whiteout' | 'opaque') => void;
  /**
   * Skip character and block devices instead of failing (a user namespace cannot mknod them); each
   * skipped one is told to `onSkipped`.
   */
  skipDevices?: boolean;
  onSkipped?: (path: string, reason: string) => void;
}

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';
const XATTR_PREFIX = 'SCHILY.xattr.';

// --- tar-stream with binary-safe PAX values -------------------------------------------------------

/** tar-stream decodes PAX values as UTF-8, which corrupts binary xattrs; this keeps them as latin1. */
function decodePaxBinary(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(buf.subarray(off, sp).toString('ascii'), 10);
    if (!len || off + len > buf.length) break;
    const rec = buf.subarray(sp + 1, off + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq > 0) {
      const key = rec.subarray(0, eq).toString('utf8');
      const val = rec.subarray(eq + 1);
      out[key] = key.startsWith(XATTR_PREFIX) ? val.toString('latin1') : val.toString('utf8');
    }
    off += len;
  }
  return out;
}

interface ExtractInternals {
  _header: tar.Header | { type: string };
  _pax: Record<string, string> | null;
  _paxGlobal: Record<string, string> | null;
}

type ExtractCtor = new () => tar.Extract;
type Entry = tar.ExtractEvents['entry'][1];
const BaseExtract = tar.extract().constructor as ExtractCtor;
const baseDecodeLongHeader = (BaseExtract.prototype as unknown as { _decodeLongHeader(b: Buffer): void })
  ._decodeLongHeader;

class BinaryPaxExtract extends BaseExtract {
  _decodeLongHeader(buf: Buffer): void {
    const self = this as unknown as ExtractInternals;
    if (self._header.type === 'pax-header') {
      self._pax = Object.assign({}, self._paxGlobal ?? {}, decodePaxBinary(buf));
    } else if (self._header.type === 'pax-global-header') {
      self._paxGlobal = decodePaxBinary(buf);
    } else baseDecodeLongHeader.call(this, buf);
  }
}

type EntryHeader = Omit<tar.Header, 'pax'> & { pax?: Record<string, string> | null };

// --- input ----------------------------------------------------------------------------------------

/** Reads the first bytes to tell the compression, then hands back a stream of the whole input. */
async function sniff(stream: Readable): Promise<{ kind: 'gzip' | 'zstd' | 'none'; body: Readable }> {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const head: Buffer[] = [];
  let size = 0;
  let done = false;
  while (size < 4) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const b = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    head.push(b);
    size += b.length;
  }
  const first = Buffer.concat(head);
  const body = Readable.from(
    (async function* () {
      if (first.length) yield first;
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      }
    })(),
    { objectMode: false },
  );
  body.on('close', () => {
    if (!stream.readableEnded) stream.destroy();
  });
  let kind: 'gzip' | 'zstd' | 'none' = 'none';
  if (first[0] === 0x1f && first[1] === 0x8b) kind = 'gzip';
  else if (first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd) kind = 'zstd';
  return { kind, body };
}

// --- helpers --------------------------------------------------------------------------------------

function unsafe(message: string): KilnError {
  return new KilnError('fs', 'UNSAFE_LAYER', message, {
    hint: 'the layer tries to write outside the image root; it is corrupt or malicious',
  });
}

/** The image path of a tar name: absolute, normalized, `..` stopped at the root. */
function imagePath(name: string): string {
  const p = posix.normalize('/' + name);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

async function run(cmd: string, args: string[]): Promise<void> {
  const r = await runCommand(cmd, args, { stdout: 'ignore' });
  if (r.code === 0) return;
  throw new KilnError(
    'fs',
    'EXTRACT_FAILED',
    `${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || `exit code ${r.code}`}`,
    { hint: 'device nodes need CAP_MKNOD; run kiln as root' },
  );
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch {
    return null;
  }
}

function num(pax: Record<string, string> | undefined, key: string, fallback: number): number {
  const v = pax?.[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

/** Removes everything under `dir` that this layer did not write (recursing into directories it did). */
async function emptyLower(dir: string, written: Set<string>): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = posix.join(dir, n);
    if (!written.has(p)) {
      await rm(p, { recursive: true, force: true });
      continue;
    }
    const st = await lstatOrNull(p);
    if (st?.isDirectory()) await emptyLower(p, written);
  }
}

// --- extraction -----------------------------------------------------------------------------------

/** Applies a layer onto `root`. Resolves with the number of tar entries read. */
export async function extractLayer(
  stream: Readable,
  root: string,
  opts: ExtractOptions = {},
): Promise<{ entries: number }> {
  root = posix.resolve(root);
  const { kind, body } = await sniff(stream);
  const decoder = kind === 'gzip' ? createGunzip() : kind === 'zstd' ? zstdDecompress() : new PassThrough();
  const ex = new BinaryPaxExtract();
  // Node streams into tar-stream's streamx writable: errors are forwarded by hand.
  body.on('error', (err) => decoder.destroy(err));
  decoder.on('error', (err) => ex.destroy(err));
  body.pipe(decoder).pipe(ex);

  const written = new Set<string>();
  const dirTimes: Array<[string, number]> = [];
  const xattrs: Array<{ path: string; xattrs: Map<string, Buffer> }> = [];
  let entries = 0;
  // Image dir → host dir for directories known to be real (not symlinks): most entries then resolve
  // with no lstat of their parents. Anything that removes or replaces a directory clears it.
  const dirs = new Map<string, string>([['/', root]]);

  try {
    for await (const entry of ex) {
      entries++;
      const h = entry.header as unknown as EntryHeader;
      try {
        await applyEntry(h, entry);
      } finally {
        entry.resume();
      }
    }
  } catch (err) {
    body.destroy();
    decoder.destroy();
    ex.destroy();
    if (err instanceof KilnError) throw err;
    throw new KilnError('fs', 'BAD_LAYER', `cannot extract layer: ${(err as Error).message}`, {
      hint: 'the layer blob is corrupt, truncated, or not a tar archive',
      cause: err,
    });
  }

  await applyXattrs(xattrs);
  for (const [p, t] of dirTimes) {
    try {
      lutimesSync(p, t, t);
    } catch {
      // removed by a later whiteout
    }
  }
  return { entries };

  /** Host path for an entry: its parent resolved chroot-style (cached), the last part not followed. */
  function resolveEntry(path: string): string {
    const parent = posix.dirname(path);
    const hostParent = dirs.get(parent);
    if (hostParent !== undefined) return posix.join(hostParent, posix.basename(path));
    const resolvedParent = resolveInRootSync(root, parent, true);
    let isDir = false;
    try {
      isDir = lstatSync(resolvedParent).isDirectory();
    } catch {
      // not there yet, or a file in the way (ENOTDIR): ensureParentSync reports it
    }
    if (isDir) dirs.set(parent, resolvedParent);
    return resolveInRootSync(root, path, false);
  }

  /** Makes room for a new entry at `host`: a non-directory is always removed, a directory only if `keepDir` is false. */
  function clearSync(host: string, keepDir: boolean): boolean {
    const st = lstatSync(host, { throwIfNoEntry: false });
    if (!st) return false;
    if (st.isDirectory()) {
      if (keepDir) return true;
      rmSync(host, { recursive: true, force: true });
      dirs.clear();
      dirs.set('/', root);
    } else unlinkSync(host);
    return false;
  }

  function ensureParentSync(host: string, name: string): void {
    const parent = posix.dirname(host);
    try {
      mkdirSync(parent, { recursive: true });
    } catch (err) {
      throw new KilnError(
        'fs',
        'LAYER_CONFLICT',
        `cannot create the parent directory of ${name}: ${(err as Error).message}`,
        {
          hint: 'a path component of this layer entry is a file in the layers below',
          cause: err,
        },
      );
    }
  }

  async function applyEntry(h: EntryHeader, entry: Entry): Promise<void> {
    const path = imagePath(h.name);
    const base = posix.basename(path);
    const pax = h.pax ?? undefined;

    if (base === OPAQUE) {
      const dir = await resolveInRoot(root, posix.dirname(path), true);
      await emptyLower(dir, written);
      dirs.clear();
      dirs.set('/', root);
      opts.onWhiteout?.(posix.dirname(path), 'opaque');
      return;
    }
    if (base.startsWith(WH)) {
      const target = posix.join(posix.dirname(path), base.slice(WH.length));
      if (target === '/') return;
      const host = await resolveInRoot(root, target, false);
      if (host !== root) await rm(host, { recursive: true, force: true });
      dirs.clear();
      dirs.set('/', root);
      opts.onWhiteout?.(target, 'whiteout');
      return;
    }
    if (path === '/') return; // the root itself ("./"): its metadata belongs to the rootfs

    const host = resolveEntry(path);
    if (host === root || !host.startsWith(root + '/'))
      throw unsafe(`layer entry ${h.name} resolves outside the root`);
    const uid = num(pax, 'uid', h.uid ?? 0);
    const gid = num(pax, 'gid', h.gid ?? 0);
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = num(pax, 'mtime', (h.mtime?.getTime() ?? 0) / 1000);

    if (!dirs.has(posix.dirname(path))) ensureParentSync(host, h.name);
    switch (h.type) {
      case 'directory': {
        if (!clearSync(host, true)) mkdirSync(host, { mode: 0o700 });
        lchownSync(host, uid, gid);
        chmodSync(host, mode);
        dirTimes.push([host, mtime]);
        dirs.set(path, host);
        break;
      }
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined: {
        clearSync(host, false);
        // Written chunk by chunk as the tar stream delivers them: never a whole file in memory.
        const fd = openSync(host, 'wx', 0o600);
        try {
          for await (const chunk of entry as AsyncIterable<Buffer>) {
            let off = 0;
            while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
          }
        } finally {
          closeSync(fd);
        }
        lchownSync(host, uid, gid);
        chmodSync(host, mode);
        lutimesSync(host, mtime, mtime);
        break;
      }
      case 'symlink': {
        clearSync(host, false);
        symlinkSync(h.linkname ?? '', host);
        lchownSync(host, uid, gid);
        lutimesSync(host, mtime, mtime);
        break;
      }
      case 'link': {
        const rel = posix.normalize(h.linkname ?? '');
        if (rel === '..' || rel.startsWith('../') || rel === '.' || rel === '') {
          throw unsafe(`hardlink ${h.name} points outside the root (${h.linkname ?? ''})`);
        }
        const target = resolveInRootSync(root, rel, false);
        if (!target.startsWith(root + '/'))
          throw unsafe(`hardlink ${h.name} points outside the root (${h.linkname})`);
        const tst = lstatSync(target, { throwIfNoEntry: false });
        if (!tst || tst.isDirectory()) {
          throw new KilnError(
            'fs',
            'BAD_LAYER',
            `hardlink ${h.name} points at ${h.linkname}, which is not a file`,
            {
              hint: 'the layer is corrupt: a hardlink target must be a non-directory written before it',
            },
          );
        }
        if (target === host) break;
        clearSync(host, false);
        linkSync(target, host);
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        if (opts.skipDevices && h.type !== 'fifo') {
          opts.onSkipped?.(path, `${h.type} ${h.devmajor ?? 0}:${h.devminor ?? 0} cannot be created here`);
          return;
        }
        clearSync(host, false);
        const m = mode.toString(8);
        if (h.type === 'fifo') await run('mkfifo', ['-m', m, '--', host]);
        else {
          const t = h.type === 'character-device' ? 'c' : 'b';
          await run('mknod', ['-m', m, '--', host, t, String(h.devmajor ?? 0), String(h.devminor ?? 0)]);
        }
        lchownSync(host, uid, gid);
        chmodSync(host, mode);
        lutimesSync(host, mtime, mtime);
        break;
      }
      default:
        return; // unknown entry types are skipped, like GNU tar does with a warning
    }
    // Parents made implicitly belong to this layer too, so an opaque marker keeps them.
    for (let p = host; p !== root && !written.has(p); p = posix.dirname(p)) written.add(p);

    if (pax) {
      const x = new Map<string, Buffer>();
      for (const [k, v] of Object.entries(pax)) {
        if (k.startsWith(XATTR_PREFIX)) x.set(k.slice(XATTR_PREFIX.length), Buffer.from(v, 'latin1'));
      }
      if (x.size > 0 && h.type !== 'symlink') xattrs.push({ path: host, xattrs: x });
    }
  }
}
