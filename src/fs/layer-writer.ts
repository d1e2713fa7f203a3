/**
 * Writes a Diff as an OCI layer blob: a PAX tar, compressed (gzip, zstd or none), streamed to a
 * temp file in one pass that computes the compressed digest and size and the uncompressed diffId
 * together; the file is then renamed to the digest's hex. Entries are sorted and, with clampMtime,
 * the same tree always gives the same bytes (gzip header mtime 0, no file name; numeric owners only).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, lstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream, digestHex } from '../image/digest.ts';
import { MediaType } from '../image/types.ts';
import { KilnError } from '../util/errors.ts';
import type { Diff, LayerWriteOptions, WrittenLayer } from './types.ts';
import { DEVICE_XATTR, OWNER_XATTR, parseDeviceXattr, parseOwnerXattr, readXattrs } from './xattr.ts';
import { createParallelGzip } from './pgzip.ts';
import { joinUnder, normalizeImagePath } from './clean-join.ts';
import { zstdCompress } from './zstd.ts';

// --- tar encoding ---------------------------------------------------------------------------------

type TypeFlag = '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x';

interface TarHeader {
  name: string;
  type: TypeFlag;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
}

const BLOCK = 512;
const ZERO = Buffer.alloc(BLOCK * 2);

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

/** Writes an octal number in a field of `len` bytes (len-1 digits and a NUL); false if it does not fit. */
function octal(buf: Buffer, off: number, len: number, n: number): boolean {
  const s = Math.floor(n).toString(8);
  if (n < 0 || s.length > len - 1) {
    buf.write('0'.repeat(len - 1), off, 'ascii');
    return false;
  }
  buf.write(s.padStart(len - 1, '0'), off, 'ascii');
  return true;
}

/** Splits a name into ustar prefix/name, or null if it needs a PAX path. */
function splitName(name: string): [string, string] | null {
  if (!isAscii(name)) return null;
  if (name.length <= 100) return ['', name];
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/' || i === name.length - 1) continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length <= 155 && rest.length <= 100 && rest.length > 0) return [prefix, rest];
    if (prefix.length <= 155) break;
  }
  return null;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'ascii'), body]);
}

function ustar(h: TarHeader, paxNeeded: { pax: Map<string, Buffer> }): Buffer {
  const b = Buffer.alloc(BLOCK);
  const split = splitName(h.name);
  if (split) {
    b.write(split[1], 0, 'ascii');
    if (split[0]) b.write(split[0], 345, 'ascii');
  } else {
    paxNeeded.pax.set('path', Buffer.from(h.name, 'utf8'));
    b.write(
      Buffer.from(h.name, 'utf8')
        .subarray(0, 100)
        .toString('latin1')
        .replace(/[^\x20-\x7e]/g, '_'),
      0,
      'ascii',
    );
  }
  octal(b, 100, 8, h.mode & 0o7777);
  if (!octal(b, 108, 8, h.uid)) paxNeeded.pax.set('uid', Buffer.from(String(h.uid)));
  if (!octal(b, 116, 8, h.gid)) paxNeeded.pax.set('gid', Buffer.from(String(h.gid)));
  if (!octal(b, 124, 12, h.size)) paxNeeded.pax.set('size', Buffer.from(String(h.size)));
  if (!octal(b, 136, 12, h.mtime)) paxNeeded.pax.set('mtime', Buffer.from(String(h.mtime)));
  b.write(h.type, 156, 'ascii');
  if (h.linkname !== undefined) {
    if (isAscii(h.linkname) && h.linkname.length <= 100) b.write(h.linkname, 157, 'ascii');
    else paxNeeded.pax.set('linkpath', Buffer.from(h.linkname, 'utf8'));
  }
  b.write('ustar\x0000', 257, 'latin1');
  octal(b, 329, 8, h.devmajor ?? 0);
  octal(b, 337, 8, h.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return b;
}

/** The header blocks of an entry: a PAX `x` header first when a field does not fit ustar, or for xattrs. */
export function encodeHeader(h: TarHeader): Buffer {
  const need = { pax: new Map<string, Buffer>() };
  const main = ustar(h, need);
  for (const [k, v] of h.xattrs ?? []) need.pax.set(`SCHILY.xattr.${k}`, v);
  if (need.pax.size === 0) return main;
  const keys = [...need.pax.keys()].sort();
  const data = Buffer.concat(keys.map((k) => paxRecord(k, need.pax.get(k)!)));
  const base = posix.basename(h.name.replace(/\/$/, '')) || 'root';
  const paxName = `PaxHeaders.0/${base}`.slice(0, 100);
  const paxHdr = ustar(
    {
      name: isAscii(paxName) ? paxName : 'PaxHeaders.0/entry',
      type: 'x',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: data.length,
      mtime: Math.max(0, h.mtime),
    },
    { pax: new Map() },
  );
  return Buffer.concat([paxHdr, data, padding(data.length), main]);
}

function padding(size: number): Buffer {
  const r = size % BLOCK;
  return r === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - r);
}

// --- the entries of a diff ------------------------------------------------------------------------

interface PlannedEntry {
  header: TarHeader;
  /** Host file to stream the content from (regular files). */
  source?: string;
}

function major(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}
function minor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

function fsError(what: string, p: string, err: unknown): KilnError {
  return new KilnError(
    'fs',
    'LAYER_WRITE_FAILED',
    `cannot ${what} ${p} for the layer: ${(err as Error).message}`,
    {
      hint: 'the snapshot changed while the layer was being written, or the disk is full',
      cause: err,
    },
  );
}

/**
 * What a tar header needs of an entry's lstat. Kept instead of the Stats itself: a 20,000-file layer
 * held 20,000 BigIntStats (18 bigints and 4 Dates each), most of the heap at the peak of a big step
 * (issue 16: the tree benchmark's RSS).
 */
interface EntryStat {
  kind: 'dir' | 'symlink' | 'file' | 'char' | 'block' | 'fifo' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds, truncated as the nanosecond value divided by 1e9 would be. */
  mtime: number;
  size: number;
  /** dev:ino of a file with more than one link (exact, from a bigint lstat), else undefined. */
  inode?: string;
  devmajor?: number;
  devminor?: number;
}

function entryStat(host: string): EntryStat {
  const st = lstatSync(host);
  const kind: EntryStat['kind'] = st.isDirectory()
    ? 'dir'
    : st.isSymbolicLink()
      ? 'symlink'
      : st.isFile()
        ? 'file'
        : st.isCharacterDevice()
          ? 'char'
          : st.isBlockDevice()
            ? 'block'
            : st.isFIFO()
              ? 'fifo'
              : 'socket';
  const e: EntryStat = {
    kind,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    mtime: Math.trunc(st.mtimeMs / 1000),
    size: st.size,
  };
  // Inode numbers and device numbers may exceed 2^53: those few entries get an exact bigint lstat.
  if ((kind === 'file' && st.nlink > 1) || kind === 'char' || kind === 'block') {
    const big = lstatSync(host, { bigint: true });
    if (kind === 'file') e.inode = `${big.dev}:${big.ino}`;
    else {
      e.devmajor = major(big.rdev);
      e.devminor = minor(big.rdev);
    }
  }
  return e;
}

/**
 * The device an extraction placeholder stands for (see DEVICE_XATTR), with the rest of its xattrs;
 * a placeholder a step wrote into is a plain file again.
 */
function placeholderDevice(
  st: EntryStat,
  x: Map<string, Buffer> | undefined,
): Pick<TarHeader, 'type' | 'devmajor' | 'devminor' | 'xattrs'> | undefined {
  const v = x?.get(DEVICE_XATTR);
  const dev = v && st.size === 0 ? parseDeviceXattr(v) : undefined;
  if (!dev) return undefined;
  const rest = new Map([...x!].filter(([k]) => k !== DEVICE_XATTR));
  return {
    type: dev.kind === 'c' ? '3' : '4',
    devmajor: dev.major,
    devminor: dev.minor,
    ...(rest.size ? { xattrs: rest } : {}),
  };
}

/**
 * Takes kiln's OWNER_XATTR out of the xattrs read and gives its entry that owner: the owner a
 * single-id extraction could not set. A file the step replaced has lost the mark, so only files it
 * kept (changed in place) carry the image's owner on.
 */
function takeOwners(
  xattrs: Map<string, Map<string, Buffer>>,
  stats: Map<string, EntryStat>,
  root: string,
): void {
  // Few entries have xattrs: walk those, not every entry of the layer.
  for (const [host, x] of xattrs) {
    const v = x.get(OWNER_XATTR);
    if (!v) continue;
    x.delete(OWNER_XATTR);
    if (x.size === 0) xattrs.delete(host);
    const st = stats.get(posix.normalize('/' + posix.relative(root, host)));
    const o = parseOwnerXattr(v);
    if (st && o) {
      st.uid = o.uid;
      st.gid = o.gid;
    }
  }
}

/** One tar entry to come, in archive order: a changed path, or a whiteout file. */
interface PlanItem {
  /** Image path of the entry ("/a/b", or the whiteout's own path). */
  key: string;
  whiteout: boolean;
}

interface LayerPlan {
  items: PlanItem[];
  root: string;
  stats: Map<string, EntryStat>;
  xattrs: Map<string, Map<string, Buffer>>;
  clamp: number | undefined;
}

/**
 * Everything decided before the archive starts: the entries in order, each changed path's lstat and
 * the xattrs (read in batches). Headers are made one at a time as the archive is written (entriesOf).
 */
async function planEntries(diff: Diff, clamp: number | undefined): Promise<LayerPlan> {
  const stats = new Map<string, EntryStat>();
  const norm = normalizeImagePath;
  const items: PlanItem[] = [];
  for (const p of new Set(diff.changed.map(norm))) {
    if (p === '') continue;
    try {
      stats.set(p, entryStat(joinUnder(diff.root, p)));
    } catch (err) {
      throw fsError('read', p, err);
    }
    items.push({ key: p, whiteout: false });
  }
  const xattrPaths: string[] = [];
  for (const [p, st] of stats) if (st.kind !== 'symlink') xattrPaths.push(joinUnder(diff.root, p));
  const xattrs = await readXattrs(xattrPaths);
  takeOwners(xattrs, stats, diff.root);
  for (const p of diff.deleted) {
    const n = norm(p);
    if (n !== '')
      items.push({ key: posix.join(posix.dirname(n), `.wh.${posix.basename(n)}`), whiteout: true });
  }
  for (const p of diff.opaque)
    items.push({ key: posix.join(norm(p) || '/', '.wh..wh..opq'), whiteout: true });
  items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { items, root: diff.root, stats, xattrs, clamp };
}

/**
 * The plan's entries in archive order, each header made when the archive reaches it. Synchronous
 * (readlinkSync), as the reads of file contents are: tarStream yields only once per batch.
 */
function* entriesOf(plan: LayerPlan): Generator<PlannedEntry> {
  const { clamp } = plan;
  const clampTime = (t: number): number => (clamp !== undefined && t > clamp ? clamp : t);
  const seenInodes = new Map<string, string>();
  for (const it of plan.items) {
    if (it.whiteout) {
      const header: TarHeader = {
        name: it.key.slice(1),
        type: '0',
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: clamp ?? 0,
      };
      yield { header };
      continue;
    }
    const e = entryOf(it.key, plan, clampTime, seenInodes);
    if (e) yield e;
  }
}

function entryOf(
  p: string,
  plan: LayerPlan,
  clampTime: (t: number) => number,
  seenInodes: Map<string, string>,
): PlannedEntry | null {
  const st = plan.stats.get(p)!;
  const host = joinUnder(plan.root, p);
  const x = plan.xattrs.get(host);
  // One literal of one shape for every entry, fields set after: headers built by spreading a base
  // object were kept alive across young-generation collections and promoted (on a 20,000-file layer
  // ~1.8 MB per collection, most of the heap's growth; issue 16: peak RSS).
  const header: TarHeader = {
    name: p.slice(1),
    type: '0',
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: 0,
    mtime: clampTime(st.mtime),
    linkname: undefined,
    devmajor: undefined,
    devminor: undefined,
    xattrs: x,
  };
  switch (st.kind) {
    case 'dir':
      header.name += '/';
      header.type = '5';
      return { header };
    case 'symlink':
      try {
        header.linkname = readlinkSync(host);
      } catch (err) {
        throw fsError('read the symlink', p, err);
      }
      header.type = '2';
      header.xattrs = undefined;
      return { header };
    case 'file': {
      const device = placeholderDevice(st, x);
      if (device) {
        header.type = device.type;
        header.devmajor = device.devmajor;
        header.devminor = device.devminor;
        header.xattrs = device.xattrs;
        return { header };
      }
      header.xattrs = x?.has(DEVICE_XATTR) ? new Map([...x].filter(([k]) => k !== DEVICE_XATTR)) : x;
      if (st.inode !== undefined) {
        const first = seenInodes.get(st.inode);
        if (first !== undefined) {
          header.type = '1';
          header.linkname = first;
          header.xattrs = undefined;
          return { header };
        }
        seenInodes.set(st.inode, header.name);
      }
      header.size = st.size;
      return { header, source: host };
    }
    case 'char':
    case 'block':
      header.type = st.kind === 'char' ? '3' : '4';
      header.devmajor = st.devmajor;
      header.devminor = st.devminor;
      return { header };
    case 'fifo':
      header.type = '6';
      return { header };
    default:
      return null; // sockets cannot be archived
  }
}

/**
 * The archive is handed on in batches of exactly this size (the last may be shorter): one pipeline
 * hop per batch, not per entry, and with gzip one batch is one compression block.
 */
const BATCH = 1 << 20;

/** Buffers of BATCH bytes handed back by the compressor, refilled instead of allocated anew. */
class BatchPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly max: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(BATCH);
  }

  give(b: Buffer): void {
    if (this.free.length < this.max) this.free.push(b);
  }
}

/**
 * Fills batches with the archive's bytes: headers are copied in, file contents read straight into
 * them (no buffer per file), an entry cut across two batches where it falls.
 */
class Batcher {
  private batch: Buffer;
  private used = 0;
  /** Full batches not yet handed on. */
  private readonly full: Buffer[] = [];

  constructor(private readonly pool: BatchPool | undefined) {
    this.batch = this.fresh();
  }

  private fresh(): Buffer {
    return this.pool?.take() ?? Buffer.allocUnsafe(BATCH);
  }

  /** Bytes left in the current batch, after moving a full one to `full`. */
  private room(): number {
    if (this.used === BATCH) {
      this.full.push(this.batch);
      this.batch = this.fresh();
      this.used = 0;
    }
    return BATCH - this.used;
  }

  put(src: Buffer): void {
    for (let off = 0; off < src.length;) {
      const n = Math.min(src.length - off, this.room());
      src.copy(this.batch, this.used, off, off + n);
      this.used += n;
      off += n;
    }
  }

  /** Up to `max` zero bytes (at most the current batch's room); returns how many. */
  zeros(max: number): number {
    const n = Math.min(max, this.room()); // first: room() may start a new batch
    this.batch.fill(0, this.used, this.used + n);
    this.used += n;
    return n;
  }

  /** Reads up to `max` bytes of `fd` at `pos` into the current batch; 0 at the file's end. */
  read(fd: number, pos: number, max: number): number {
    const want = Math.min(max, this.room()); // first: room() may start a new batch
    const n = readSync(fd, this.batch, this.used, want, pos);
    this.used += n;
    return n;
  }

  /** Full batches, each handed on once. */
  *takeFull(): Generator<Buffer> {
    while (this.full.length) yield this.full.shift()!;
  }

  /** The batch being filled, as far as it is filled (a whole one too), or undefined if empty; ends the archive. */
  rest(): Buffer | undefined {
    return this.used > 0 ? this.batch.subarray(0, this.used) : undefined;
  }
}

/**
 * The archive as batches: each entry's header, then exactly `size` bytes of its file (cut or
 * zero-filled if the file changed meanwhile) and padding. Yields whenever a batch is full, so a big
 * file is read a batch at a time between the consumer's turns.
 */
async function* tarStream(plan: LayerPlan, count: { n: number }, pool?: BatchPool): AsyncGenerator<Buffer> {
  const out = new Batcher(pool);
  for (const e of entriesOf(plan)) {
    count.n++;
    out.put(encodeHeader(e.header));
    const size = e.header.size;
    if (e.source && size > 0) {
      let fd: number;
      try {
        fd = openSync(e.source, 'r');
      } catch (err) {
        throw fsError('read', e.header.name, err);
      }
      let pos = 0;
      try {
        while (pos < size) {
          const n = out.read(fd, pos, size - pos);
          if (n === 0) break; // shrank meanwhile: the rest is zero-filled
          pos += n;
          yield* out.takeFull();
        }
      } finally {
        closeSync(fd);
      }
      for (let left = size - pos; left > 0;) {
        left -= out.zeros(left);
        yield* out.takeFull();
      }
      out.put(padding(size));
    }
    yield* out.takeFull();
  }
  out.put(ZERO);
  yield* out.takeFull();
  const last = out.rest();
  if (last) yield last;
}

class Passthrough extends Transform {
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, chunk);
  }
}

// --- public ---------------------------------------------------------------------------------------

/** Writes `diff` as a layer blob in opts.outDir, named by the hex of its digest. */
export async function writeLayer(diff: Diff, opts: LayerWriteOptions): Promise<WrittenLayer> {
  const plan = await planEntries(diff, opts.clampMtime);
  const count = { n: 0 };
  const tmp = posix.join(opts.outDir, `.tmp-layer-${randomBytes(8).toString('hex')}`);
  const uncompressed = new DigestStream();
  const compressed = new DigestStream();
  const level = Math.round(opts.compressionLevel);
  // Only gzip gives batches back: zstd and plain layers hand theirs to the next stream for good.
  const pool = opts.compression === 'gzip' ? new BatchPool(8) : undefined;
  const compressor =
    opts.compression === 'gzip'
      ? createParallelGzip({
          level: Number.isFinite(level) ? level : 6,
          blockSize: BATCH,
          recycle: (b) => pool!.give(b),
        })
      : opts.compression === 'zstd'
        ? zstdCompress(level)
        : new Passthrough();
  try {
    await pipeline(
      Readable.from(tarStream(plan, count, pool), { objectMode: false }),
      uncompressed,
      compressor,
      compressed,
      createWriteStream(tmp, { flags: 'wx', mode: 0o644 }),
    );
    const digest = compressed.digest();
    const path = posix.join(opts.outDir, digestHex(digest));
    await rename(tmp, path);
    return {
      path,
      digest,
      diffId: uncompressed.digest(),
      size: compressed.size,
      mediaType:
        opts.compression === 'gzip'
          ? MediaType.OciLayerGzip
          : opts.compression === 'zstd'
            ? MediaType.OciLayerZstd
            : MediaType.OciLayer,
      entries: count.n,
    };
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof KilnError) throw err;
    throw new KilnError(
      'fs',
      'LAYER_WRITE_FAILED',
      `cannot write layer to ${opts.outDir}: ${(err as Error).message}`,
      {
        hint: 'check that the output directory exists and the disk has room',
        cause: err,
      },
    );
  }
}
