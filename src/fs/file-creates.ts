/**
 * Creates small regular files on a worker thread while the extractor goes on parsing the layer.
 * Creating inodes is where a layer restore spends its time (ext4's inode allocation: 48% of the
 * debian base's extraction, all in the kernel), and one thread doing it in turn with the tar
 * parsing made kiln slower than GNU tar. Handed to the worker in batches, so one message carries
 * dozens of files: the thread pool's one hop per call (open, write, fchown, fchmod, futimes, close)
 * cost 184,000 futex calls for the debian base and made the restore slower, not faster.
 *
 * Only paths that cannot exist are handed here (see LayerApplier: the parent was made by this very
 * extraction and the layer has not written the path yet), so the exclusive create never meets
 * anything in the way, and the worker follows and removes nothing. The caller settles a path before
 * any later entry touches it, and drains everything before it removes a directory.
 */
import { Worker } from 'node:worker_threads';
import { watchWorker } from '../util/young-generation.ts';

export interface FileMeta {
  uid: number;
  gid: number;
  mode: number;
  mtime: number;
}

type Step = 'open' | 'write' | 'chown' | 'chmod' | 'utimes' | 'close';

/** A failed create: the step that failed and the host path, for the caller's error. */
export class FileCreateError extends Error {
  constructor(
    readonly host: string,
    readonly step: Step,
    readonly errno: NodeJS.ErrnoException,
    readonly meta: FileMeta,
  ) {
    super(`${step} ${host}: ${errno.message}`);
  }
}

interface BatchFile extends FileMeta {
  host: string;
  /** Offset and length of the content in the batch's buffer. */
  off: number;
  len: number;
}

interface BatchReply {
  id: number;
  /** The batch's buffer, handed back for the next batch. */
  data?: ArrayBuffer;
  failed?: { index: number; step: Step; code: string; message: string };
}

/**
 * The worker: sync calls, in order, one batch per message; stops a batch at its first failure.
 * Self-contained source (node:fs only), so the bundle needs no second entry file.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', ({ id, files, data }) => {
  const buf = Buffer.from(data);
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    let step = 'open';
    let fd = -1;
    try {
      fd = fs.openSync(f.host, 'wx', 0o600);
      step = 'write';
      let off = 0;
      while (off < f.len) off += fs.writeSync(fd, buf, f.off + off, f.len - off);
      step = 'chown';
      fs.fchownSync(fd, f.uid, f.gid);
      step = 'chmod';
      fs.fchmodSync(fd, f.mode);
      step = 'utimes';
      fs.futimesSync(fd, f.mtime, f.mtime);
      step = 'close';
      const c = fd;
      fd = -1;
      fs.closeSync(c);
    } catch (err) {
      if (fd >= 0) try { fs.closeSync(fd); } catch {}
      parentPort.postMessage({ id, data, failed: { index: i, step, code: err.code ?? '', message: err.message } }, [data]);
      return;
    }
  }
  parentPort.postMessage({ id, data }, [data]);
});
`;

/** Files per message. */
const BATCH_FILES = 64;
/** Content bytes per message: the size of each batch buffer, and the biggest file handed here. */
export const BATCH_BYTES = 1 << 20;
/** Batches sent and not yet done. */
const IN_FLIGHT = 4;

interface Batch {
  id: number;
  files: BatchFile[];
  /** The content of every file, end to end; moved to the worker and back, then reused. */
  buf: Buffer;
  bytes: number;
  done: Promise<void>;
  resolve(): void;
}

export class FileCreates {
  private worker: Worker | undefined;
  private nextId = 0;
  private open: Batch | undefined;
  private readonly sent = new Map<number, Batch>();
  /** Host path → the batch that creates it, until that batch is done. */
  private readonly batchOf = new Map<string, Batch>();
  private failure: FileCreateError | undefined;
  /**
   * Batch buffers back from the worker: at most IN_FLIGHT + 1 are ever made. The content of 5,000
   * files held in buffers of their own, each left to the collector, took the extraction's RSS up by
   * 60 MB.
   */
  private readonly free: ArrayBuffer[] = [];

  has(host: string): boolean {
    return this.batchOf.has(host);
  }

  /**
   * Queues `host` with its content (`size` bytes, at most BATCH_BYTES, read from `body` straight into
   * the batch buffer); sends the batch when full, first waiting while IN_FLIGHT batches are in flight.
   */
  async add(host: string, m: FileMeta, size: number, body: AsyncIterable<Buffer>): Promise<void> {
    this.check();
    if (size > BATCH_BYTES) throw new RangeError(`${host}: ${size} bytes is more than a batch holds`);
    if (this.open && this.open.bytes + size > BATCH_BYTES) await this.send();
    const b = (this.open ??= this.newBatch());
    const start = b.bytes;
    let end = start;
    for await (const chunk of body) {
      if (end + chunk.length > start + size)
        throw new RangeError(`${host}: more content than its ${size} bytes`);
      end += chunk.copy(b.buf, end);
    }
    b.files.push({
      host,
      off: start,
      len: end - start,
      uid: m.uid,
      gid: m.gid,
      mode: m.mode,
      mtime: m.mtime,
    });
    b.bytes = end;
    this.batchOf.set(host, b);
    if (b.files.length >= BATCH_FILES || b.bytes >= BATCH_BYTES) await this.send();
  }

  /** Waits until `host` is created, if it was queued; throws the first failure. */
  async settle(host: string): Promise<void> {
    const b = this.batchOf.get(host);
    if (b) {
      if (b === this.open) await this.send();
      await b.done;
    }
    this.check();
  }

  /** Waits until every queued file is created; throws the first failure. */
  async drain(): Promise<void> {
    if (this.open) await this.send();
    while (this.sent.size > 0) await Promise.all([...this.sent.values()].map((b) => b.done));
    this.check();
  }

  /** Stops the worker (after drain, or after a failure: what it is doing then no longer matters). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private newBatch(): Batch {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const buf = Buffer.from(this.free.pop() ?? new ArrayBuffer(BATCH_BYTES));
    return { id: this.nextId++, files: [], buf, bytes: 0, done, resolve };
  }

  private async send(): Promise<void> {
    const b = this.open;
    if (!b) return;
    this.open = undefined;
    while (this.sent.size >= IN_FLIGHT) await Promise.race([...this.sent.values()].map((s) => s.done));
    this.sent.set(b.id, b);
    const data = b.buf.buffer as ArrayBuffer;
    this.start().postMessage({ id: b.id, files: b.files, data }, [data]);
  }

  /**
   * One worker: two or three (batches spread over them) were no faster on the debian base (2.44-2.78
   * s against 2.45-2.77 s), the kernel's inode allocation does not go faster for more threads here.
   */
  private start(): Worker {
    if (this.worker) return this.worker;
    // A small heap: the worker holds one batch's file list at a time.
    const w = watchWorker(
      new Worker(WORKER_SOURCE, {
        eval: true,
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 },
      }),
    );
    w.unref();
    w.on('message', (r: BatchReply) => this.done(r));
    w.on('error', (err) => this.failAll(err));
    this.worker = w;
    return w;
  }

  private done(r: BatchReply): void {
    const b = this.sent.get(r.id);
    if (!b) return;
    this.sent.delete(r.id);
    if (r.data) this.free.push(r.data);
    if (r.failed && !this.failure) {
      const f = b.files[r.failed.index]!;
      const errno = Object.assign(new Error(r.failed.message), { code: r.failed.code });
      this.failure = new FileCreateError(f.host, r.failed.step, errno, f);
    }
    for (const f of b.files) if (this.batchOf.get(f.host) === b) this.batchOf.delete(f.host);
    b.resolve();
  }

  private failAll(err: Error): void {
    const errno = err as NodeJS.ErrnoException;
    for (const b of this.sent.values()) {
      const f = b.files[0]!;
      this.failure ??= new FileCreateError(f.host, 'open', errno, f);
      this.done({ id: b.id });
    }
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }
}
