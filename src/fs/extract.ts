/**
 * Applies one OCI layer (tar, tar+gzip or tar+zstd, sniffed from its first bytes) onto a rootfs
 * directory, streamed entry by entry. Every path is resolved chroot-style inside the root (see
 * resolveInRoot), so `..`, absolute names and symlinks pointing out of the root cannot make an
 * entry land outside it; a hardlink whose target leaves the root is refused.
 *
 * Nothing is applied later by path: a later entry of the same layer may replace a parent directory
 * with a symlink to anywhere. Owners, modes and times of files are set through the descriptor they
 * were written with; xattrs go through a descriptor opened right after the entry was made (batched,
 * one setfattr per batch); directory times, which must wait for the directory's contents, are set
 * at the end only on a path re-checked component by component to be real directories, the same inode.
 */
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  constants as fsConstants,
} from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { resolveInRoot, resolveInRootSync } from './rootpath.ts';
import { KilnError } from '../util/errors.ts';
import { runCommand } from '../util/command.ts';
import { applyXattrsToFds, DEVICE_XATTR, FD_BATCH, OWNER_XATTR } from './xattr.ts';
import { BATCH_BYTES, FileCreateError, FileCreates } from './file-creates.ts';
import { gunzipDecoder, zstdDecompress } from './zstd.ts';

export interface ExtractOptions {
  /**
   * Told of each whiteout once it has been applied: `path` is the image path that was deleted
   * (`/etc/foo`), or the directory that was made opaque.
   */
  onWhiteout?: (path: string, kind: 'whiteout' | 'opaque') => void;
  /**
   * Create character and block devices (default: no). A device in the build tree would let a later
   * RUN reach the host's hardware through it (the host kernel log, its disks), and a user namespace
   * cannot mknod anyway: each device becomes an empty placeholder file recording it in
   * DEVICE_XATTR, which the layer writer turns back into the device, so the image keeps it. Each
   * placeholder is told to `onSkipped`. Only BuildKit's explicit opt-in (`RUN --security=insecure`)
   * should set this.
   */
  createDevices?: boolean;
  /** Placeholders even when createDevices is set (a user namespace: no mknod whatever is wanted). */
  skipDevices?: boolean;
  onSkipped?: (path: string, reason: string) => void;
  /**
   * A single-id user namespace (podman's ignore_chown_errors): a chown that fails with EINVAL (the
   * id is not mapped) is skipped, the entry stays owned by root and its owner from the layer is kept
   * in OWNER_XATTR for the layer writer. Each skipped entry is told to `onChownSkipped`.
   */
  ignoreChownErrors?: boolean;
  onChownSkipped?: (path: string, uid: number, gid: number) => void;
  /** Told the number of blob bytes read so far, as they are read (progress of a base extraction). */
  onRead?: (bytes: number) => void;
  /**
   * Regular files made on this thread before the rest of the layer's small files go to a worker
   * thread (src/fs/file-creates.ts), default 200: most layers have fewer, and the worker costs ~30 ms
   * to start. Tests set 0 to put every layer through the worker.
   */
  backgroundAfter?: number;
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

/** Applies a layer onto `root`. Resolves with the number of tar entries read, and of files the worker thread made. */
export async function extractLayer(
  stream: Readable,
  root: string,
  opts: ExtractOptions = {},
): Promise<{ entries: number; background: number }> {
  root = posix.resolve(root);
  const { kind, body } = await sniff(stream);
  const decoder = kind === 'gzip' ? gunzipDecoder() : kind === 'zstd' ? zstdDecompress() : new PassThrough();
  const ex = new BinaryPaxExtract();
  // Node streams into tar-stream's streamx writable: errors are forwarded by hand.
  body.on('error', (err) => decoder.destroy(err));
  decoder.on('error', (err) => ex.destroy(err));
  body.pipe(decoder).pipe(ex);
  const onRead = opts.onRead;
  if (onRead) {
    let read = 0;
    // A second listener beside the pipe: it sees the same chunks and pauses with it.
    body.on('data', (c: Buffer) => onRead((read += c.length)));
  }

  const applier = new LayerApplier(root, opts);
  let entries = 0;
  try {
    for await (const entry of ex) {
      entries++;
      try {
        await applier.apply(entry.header as unknown as EntryHeader, entry);
      } finally {
        entry.resume();
      }
    }
    await applier.finish();
  } catch (err) {
    await applier.abandon();
    body.destroy();
    decoder.destroy();
    ex.destroy();
    if (err instanceof KilnError) throw err;
    if (err instanceof FileCreateError && err.step === 'chown' && err.errno.code === 'EINVAL')
      throw applier.unmappedOwner(err.host, err.errno, err.meta);
    throw new KilnError('fs', 'BAD_LAYER', `cannot extract layer: ${(err as Error).message}`, {
      hint: 'the layer blob is corrupt, truncated, or not a tar archive',
      cause: err,
    });
  }
  return { entries, background: applier.background };
}

/** Linux's O_PATH (the asm-generic value, which x86, arm, arm64, riscv and ppc share): Node has no constant for it. */
const O_PATH = 0o10000000;
const O_PATH_NOFOLLOW = O_PATH | fsConstants.O_NOFOLLOW;

interface DirTime {
  host: string;
  dev: number;
  ino: number;
  mtime: number;
}

interface Meta {
  uid: number;
  gid: number;
  mode: number;
  mtime: number;
  xattrs: Map<string, Buffer> | undefined;
}

/** The state of one layer being applied: entry handlers, pending xattrs (held by descriptor), deferred dir times. */
class LayerApplier {
  /** Host paths this layer wrote (parents made implicitly included), for opaque markers. */
  private readonly written = new Set<string>();
  private readonly dirTimes: DirTime[] = [];
  private pending: Array<{ fd: number; name: string; xattrs: Map<string, Buffer> }> = [];
  /**
   * Image dir → host dir for directories known to be real (not symlinks): most entries then resolve
   * with no lstat of their parents. Anything that removes or replaces a directory clears it.
   */
  private readonly dirs = new Map<string, string>();
  /**
   * Host dirs this extraction made (or the root, when it started empty): everything in them was
   * written by this layer, so a path in one that `written` does not hold cannot exist, and its file
   * can be created in the background. Anything that removes a directory clears it.
   */
  private readonly fresh = new Set<string>();
  private readonly creates = new FileCreates();
  private files = 0;
  /** Files handed to the worker thread. */
  background = 0;

  constructor(
    private readonly root: string,
    private readonly opts: ExtractOptions,
  ) {
    this.dirs.set('/', root);
    try {
      if (readdirSync(root).length === 0) this.fresh.add(root);
    } catch {
      // not there yet: ensureParentSync makes it (and nothing is fresh)
    }
  }

  async apply(h: EntryHeader, entry: Entry): Promise<void> {
    const path = imagePath(h.name);
    const base = posix.basename(path);
    if (base === OPAQUE) return this.opaque(posix.dirname(path));
    if (base.startsWith(WH)) return this.whiteout(posix.join(posix.dirname(path), base.slice(WH.length)));
    if (path === '/') return; // the root itself ("./"): its metadata belongs to the rootfs

    const host = this.resolveEntry(path);
    if (host === this.root || !host.startsWith(this.root + '/'))
      throw unsafe(`layer entry ${h.name} resolves outside the root`);
    // A later entry for a path whose file is being created in the background replaces it: not before.
    if (this.creates.has(host)) await this.creates.settle(host);
    const pax = h.pax ?? undefined;
    const meta: Meta = {
      uid: num(pax, 'uid', h.uid ?? 0),
      gid: num(pax, 'gid', h.gid ?? 0),
      mode: (h.mode ?? 0o644) & 0o7777,
      mtime: num(pax, 'mtime', (h.mtime?.getTime() ?? 0) / 1000),
      xattrs: paxXattrs(pax),
    };
    if (!this.dirs.has(posix.dirname(path))) this.ensureParent(host, h.name);
    switch (h.type) {
      case 'directory':
        await this.directory(path, host, meta);
        break;
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined:
        if (this.inBackground(host, h, meta)) {
          this.background++;
          await this.creates.add(host, meta, h.size ?? 0, entry as AsyncIterable<Buffer>);
        } else await this.file(host, meta, entry);
        break;
      case 'symlink':
        if (!tryCreate(() => symlinkSync(h.linkname ?? '', host))) {
          await this.clear(host, false);
          symlinkSync(h.linkname ?? '', host);
        }
        // No xattr can be set on a symlink: a skipped owner is lost (symlink owners mean nothing).
        this.chown(host, meta, () => lchownSync(host, meta.uid, meta.gid));
        lutimesSync(host, meta.mtime, meta.mtime);
        break;
      case 'link':
        // Its target may be a file still being created; hard links are few (2 in debian's base).
        await this.creates.drain();
        if (!(await this.hardlink(h, host))) return;
        this.keepXattrs(host, meta.xattrs);
        break;
      case 'character-device':
      case 'block-device':
      case 'fifo':
        await this.special(h, path, host, meta);
        break;
      default:
        return; // unknown entry types are skipped, like GNU tar does with a warning
    }
    await this.flushIfFull();
    // Parents made implicitly belong to this layer too, so an opaque marker keeps them.
    for (let p = host; p !== this.root && !this.written.has(p); p = posix.dirname(p)) this.written.add(p);
  }

  /** Waits for the files created in the background, sets the pending xattrs, then the directory times. Call once, after the last entry. */
  async finish(): Promise<void> {
    await this.creates.drain();
    await this.creates.close();
    await this.flush();
    this.applyDirTimes();
  }

  /** After a failure: waits for the background creates (their errors no longer matter), closes the descriptors still held. */
  async abandon(): Promise<void> {
    await this.creates.drain().catch(() => undefined);
    await this.creates.close();
    for (const p of this.pending) closeQuietly(p.fd);
    this.pending = [];
  }

  /**
   * A regular file that can be created in the background: small (its content is held until then),
   * no xattrs and no skipped-chown bookkeeping (both need the descriptor here), in a fresh directory
   * and not written by this layer yet, so that nothing can be in its way.
   */
  private inBackground(host: string, h: EntryHeader, m: Meta): boolean {
    return (
      ++this.files > (this.opts.backgroundAfter ?? BACKGROUND_AFTER) &&
      !m.xattrs &&
      !this.opts.ignoreChownErrors &&
      (h.size ?? 0) <= BATCH_BYTES &&
      !this.written.has(host) &&
      this.fresh.has(posix.dirname(host))
    );
  }

  private resetDirs(): void {
    this.dirs.clear();
    this.dirs.set('/', this.root);
    this.fresh.clear();
  }

  private async opaque(dir: string): Promise<void> {
    await this.creates.drain();
    await emptyLower(await resolveInRoot(this.root, dir, true), this.written);
    this.resetDirs();
    this.opts.onWhiteout?.(dir, 'opaque');
  }

  private async whiteout(target: string): Promise<void> {
    if (target === '/') return;
    await this.creates.drain();
    const host = await resolveInRoot(this.root, target, false);
    if (host !== this.root) await rm(host, { recursive: true, force: true });
    this.resetDirs();
    this.opts.onWhiteout?.(target, 'whiteout');
  }

  /** Host path for an entry: its parent resolved chroot-style (cached), the last part not followed. */
  private resolveEntry(path: string): string {
    const parent = posix.dirname(path);
    const hostParent = this.dirs.get(parent);
    if (hostParent !== undefined) return posix.join(hostParent, posix.basename(path));
    const resolvedParent = resolveInRootSync(this.root, parent, true);
    let isDir = false;
    try {
      isDir = lstatSync(resolvedParent).isDirectory();
    } catch {
      // not there yet, or a file in the way (ENOTDIR): ensureParentSync reports it
    }
    if (isDir) this.dirs.set(parent, resolvedParent);
    return resolveInRootSync(this.root, path, false);
  }

  /**
   * Makes room for a new entry at `host`: a non-directory is always removed, a directory only if
   * `keepDir` is false (after the background creates, some of which may be inside it). True when a
   * directory is there and kept.
   */
  private async clear(host: string, keepDir: boolean): Promise<boolean> {
    const st = lstatSync(host, { throwIfNoEntry: false });
    if (!st) return false;
    if (st.isDirectory()) {
      if (keepDir) return true;
      await this.creates.drain();
      rmSync(host, { recursive: true, force: true });
      this.resetDirs();
    } else unlinkSync(host);
    return false;
  }

  private async directory(path: string, host: string, m: Meta): Promise<void> {
    const make = (): void => void mkdirSync(host, { mode: 0o700 });
    let made = tryCreate(make);
    // Something there: a directory is kept as it is (not fresh), anything else replaced.
    if (!made && !(await this.clear(host, true))) {
      make();
      made = true;
    }
    if (made) this.fresh.add(host);
    // `host` is a real directory here (just made, or lstat'ed as one), its parents too.
    this.chown(host, m, () => lchownSync(host, m.uid, m.gid));
    chmodSync(host, m.mode);
    const st = lstatSync(host);
    this.dirTimes.push({ host, dev: st.dev, ino: st.ino, mtime: m.mtime });
    this.dirs.set(path, host);
    this.keepXattrs(host, m.xattrs);
  }

  /** Written chunk by chunk as the tar stream delivers them: never a whole file in memory. */
  private async file(host: string, m: Meta, entry: Entry | null): Promise<void> {
    let fd = -1;
    if (!tryCreate(() => (fd = openSync(host, 'wx', 0o600)))) {
      await this.clear(host, false);
      fd = openSync(host, 'wx', 0o600);
    }
    try {
      if (entry) {
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          let off = 0;
          while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        }
      }
      // Through the descriptor: chown first (it clears setuid bits), then the mode, then the time.
      this.chown(host, m, () => fchownSync(fd, m.uid, m.gid));
      fchmodSync(fd, m.mode);
      futimesSync(fd, m.mtime, m.mtime);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (m.xattrs) this.pending.push({ fd, name: host, xattrs: m.xattrs });
    else closeSync(fd);
  }

  /** Returns false when the link is the entry itself (nothing to do). */
  private async hardlink(h: EntryHeader, host: string): Promise<boolean> {
    const rel = posix.normalize(h.linkname ?? '');
    if (rel === '..' || rel.startsWith('../') || rel === '.' || rel === '') {
      throw unsafe(`hardlink ${h.name} points outside the root (${h.linkname ?? ''})`);
    }
    const target = resolveInRootSync(this.root, rel, false);
    if (!target.startsWith(this.root + '/'))
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
    if (target === host) return false;
    await this.clear(host, false);
    linkSync(target, host);
    return true;
  }

  /** Fifos, and devices (or their placeholders, see ExtractOptions.skipDevices). */
  private async special(h: EntryHeader, path: string, host: string, m: Meta): Promise<void> {
    const major = h.devmajor ?? 0;
    const minor = h.devminor ?? 0;
    if (h.type !== 'fifo' && (!this.opts.createDevices || this.opts.skipDevices)) {
      const kind = h.type === 'character-device' ? 'c' : 'b';
      const xattrs = new Map(m.xattrs ?? []);
      xattrs.set(DEVICE_XATTR, Buffer.from(`${kind} ${major} ${minor}`));
      this.opts.onSkipped?.(
        path,
        `${h.type} ${major}:${minor} is kept in the layer, not created in the build tree`,
      );
      return this.file(host, { ...m, xattrs }, null);
    }
    await this.clear(host, false);
    const mode = m.mode.toString(8);
    if (h.type === 'fifo') await run('mkfifo', ['-m', mode, '--', host]);
    else
      await run('mknod', [
        '-m',
        mode,
        '--',
        host,
        h.type === 'character-device' ? 'c' : 'b',
        String(major),
        String(minor),
      ]);
    this.chown(host, m, () => lchownSync(host, m.uid, m.gid));
    chmodSync(host, m.mode);
    lutimesSync(host, m.mtime, m.mtime);
    this.keepXattrs(host, m.xattrs);
  }

  /**
   * Runs `chown`; with ignoreChownErrors an EINVAL (an id the user namespace does not map) leaves the
   * entry owned by root and records the layer's owner in OWNER_XATTR (in `m.xattrs`, set after this).
   */
  private chown(host: string, m: Meta, chown: () => void): void {
    try {
      chown();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      const path = `/${posix.relative(this.root, host)}`;
      if (!this.opts.ignoreChownErrors) throw this.unmappedOwner(host, err, m);
      m.xattrs = new Map(m.xattrs ?? []).set(OWNER_XATTR, Buffer.from(`${m.uid}:${m.gid}`));
      this.opts.onChownSkipped?.(path, m.uid, m.gid);
    }
  }

  /** The error of a chown to an id this user namespace does not map. */
  unmappedOwner(host: string, cause: unknown, m: { uid: number; gid: number }): KilnError {
    const path = `/${posix.relative(this.root, host)}`;
    return new KilnError(
      'isolation',
      'UNMAPPED_OWNER',
      `cannot give ${path} its owner ${m.uid}:${m.gid} from the layer: that id is not mapped in this user namespace`,
      {
        hint: 'give the build user a subordinate id range covering it (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 <user>)',
        cause,
      },
    );
  }

  /** mkdir -p of the entry's parent; the dirs it made are fresh. */
  private ensureParent(host: string, name: string): void {
    const dir = posix.dirname(host);
    const first = ensureParentSync(host, name);
    if (first === undefined) return;
    for (let p = dir; p.length >= first.length; p = posix.dirname(p)) {
      this.fresh.add(p);
      if (p === first) break;
    }
  }

  /**
   * Holds a descriptor of the entry just made (O_PATH: a device or fifo is not opened for I/O) so
   * its xattrs can be set later, batched, on this very inode. Symlinks get none, as before.
   */
  private keepXattrs(host: string, xattrs: Map<string, Buffer> | undefined): void {
    if (!xattrs) return;
    const fd = openSync(host, O_PATH_NOFOLLOW);
    this.pending.push({ fd, name: host, xattrs });
  }

  private async flushIfFull(): Promise<void> {
    if (this.pending.length >= FD_BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    try {
      await applyXattrsToFds(batch);
    } finally {
      for (const p of batch) closeQuietly(p.fd);
    }
  }

  /**
   * A directory's time is set once its contents are written, so at the end; by then a later entry
   * may have replaced one of its parents with a symlink. Each path is re-checked from the root down,
   * without following anything: every component a real directory, the last one the inode made. A
   * directory that failed the check was replaced or removed, and its time no longer matters.
   */
  private applyDirTimes(): void {
    const real = new Map<string, boolean>([[this.root, true]]);
    const isRealDir = (p: string): boolean => {
      const known = real.get(p);
      if (known !== undefined) return known;
      const parent = posix.dirname(p);
      const ok =
        parent.length >= this.root.length &&
        isRealDir(parent) &&
        lstatSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
      real.set(p, ok);
      return ok;
    };
    for (const t of this.dirTimes) {
      if (!isRealDir(posix.dirname(t.host))) continue;
      const st = lstatSync(t.host, { throwIfNoEntry: false });
      if (!st?.isDirectory() || st.ino !== t.ino || st.dev !== t.dev) continue;
      lutimesSync(t.host, t.mtime, t.mtime);
    }
  }
}

/**
 * Makes a new entry with an exclusive create (O_EXCL, mkdir, symlink), which never follows what is
 * in the way: true when made, false when something exists there (the caller clears it and retries).
 * Trying first spares an lstat per entry, nearly always ENOENT on a layer applied over nothing:
 * 6,700 of them on the debian base, as GNU tar also creates first and looks only on EEXIST.
 */
function tryCreate(make: () => void): boolean {
  try {
    make();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Returns the first directory it made, if it made any. */
function ensureParentSync(host: string, name: string): string | undefined {
  try {
    return mkdirSync(posix.dirname(host), { recursive: true });
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

const BACKGROUND_AFTER = 200;

function paxXattrs(pax: Record<string, string> | undefined): Map<string, Buffer> | undefined {
  if (!pax) return undefined;
  let x: Map<string, Buffer> | undefined;
  for (const [k, v] of Object.entries(pax)) {
    const name = k.slice(XATTR_PREFIX.length);
    // kiln's own marks are never taken from a layer: a device mark would turn a file into a device.
    if (!k.startsWith(XATTR_PREFIX) || name === DEVICE_XATTR || name === OWNER_XATTR) continue;
    x ??= new Map();
    x.set(name, Buffer.from(v, 'latin1'));
  }
  return x;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
