/**
 * Puts files into the COPY file pool (file-pool.ts) ahead of the COPY that will link them: while a
 * stage's tree is still being made (a base extracted on a runner that restored only blobs), the
 * step's context files are created as pool entries on a worker thread, so that the COPY, once the
 * tree is there, links them instead of creating 5,000 inodes after the extraction instead of beside
 * it. Creating inodes is what a COPY costs on these disks (file-pool.ts), and two creators in
 * different directories overlapped here: 6,000 + 5,000 files in 0.99-1.77 s together against
 * 2.6-4.8 s one after the other.
 *
 * Each entry is made under a temporary name in the pool directory, given exactly the bytes, mode,
 * owner and mtime its key promises, and linked under the key only when the source's inode, size,
 * mtime and ctime are still the ones the key was made from; FilePool.take checks the attributes once
 * more when the COPY links it. Stopping (the tree is ready) ends the fill after the file in hand: the
 * COPY makes the rest itself.
 */
import { Worker } from 'node:worker_threads';
import { watchWorker } from '../util/young-generation.ts';

/** One pool entry to make: `from`'s bytes as `dir/key`, with these attributes. */
export interface FillItem {
  from: string;
  key: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  /** The source's stat the key was made from (lstat, milliseconds as FilePool.key reads them). */
  ino: number;
  size: number;
  srcMtimeMs: number;
  srcCtimeMs: number;
}

interface FillReply {
  id: number;
  made: number;
  failed?: string;
}

/**
 * The worker: sync calls, one batch per message, checking the stop flag before each file; a failure
 * (EPERM on chown, ENOSPC) stops the whole fill. Self-contained source (node:fs only), so the bundle
 * needs no second entry file.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const stop = new Int32Array(workerData.stop);
const buf = Buffer.allocUnsafe(1 << 20);
const creator = { uid: process.geteuid(), gid: process.getegid() };
let seq = 0;
parentPort.on('message', ({ id, dir, items }) => {
  let made = 0;
  for (const f of items) {
    if (Atomics.load(stop, 0) !== 0) break;
    const tmp = dir + '/.fill-' + process.pid + '-' + seq++;
    let src = -1;
    let dst = -1;
    try {
      src = fs.openSync(f.from, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      const a = fs.fstatSync(src);
      if (a.ino !== f.ino || a.size !== f.size || a.mtimeMs !== f.srcMtimeMs || a.ctimeMs !== f.srcCtimeMs || !a.isFile()) {
        fs.closeSync(src);
        continue;
      }
      dst = fs.openSync(tmp, 'wx', 0o600);
      let n;
      while ((n = fs.readSync(src, buf, 0, buf.length, null)) > 0) {
        for (let off = 0; off < n;) off += fs.writeSync(dst, buf, off, n - off);
      }
      if (f.uid !== creator.uid || f.gid !== creator.gid) fs.fchownSync(dst, f.uid, f.gid);
      fs.fchmodSync(dst, f.mode);
      fs.futimesSync(dst, f.mtimeMs / 1000, f.mtimeMs / 1000);
      const b = fs.fstatSync(src);
      fs.closeSync(dst);
      dst = -1;
      fs.closeSync(src);
      src = -1;
      // Changed while read: the bytes may not be the ones the key names.
      if (b.size !== f.size || b.mtimeMs !== f.srcMtimeMs || b.ctimeMs !== f.srcCtimeMs) {
        fs.unlinkSync(tmp);
        continue;
      }
      try {
        fs.linkSync(tmp, dir + '/' + f.key);
        made++;
      } catch (e) {
        if (e.code !== 'EEXIST') throw e;
      }
      fs.unlinkSync(tmp);
    } catch (err) {
      if (dst >= 0) try { fs.closeSync(dst); } catch {}
      if (src >= 0) try { fs.closeSync(src); } catch {}
      try { fs.unlinkSync(tmp); } catch {}
      if (err.code === 'ENOENT' && dst < 0) continue;
      parentPort.postMessage({ id, made, failed: (err.code || '') + ' ' + err.message });
      return;
    }
  }
  parentPort.postMessage({ id, made });
});
`;

/** Files per message: small enough that stopping waits for little, big enough to keep the worker busy. */
const BATCH = 128;

export interface PoolFillResult {
  /** Entries made (not counting keys another build had made first). */
  made: number;
  /** Why the fill stopped early, when something failed. */
  failed?: string;
}

/** A running fill of `dir` with `items`; stop() ends it and tells what was made. */
export class PoolFill {
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private readonly worker: Worker;
  private made = 0;
  private failed: string | undefined;
  private readonly finished: Promise<void>;

  constructor(dir: string, items: readonly FillItem[]) {
    this.worker = watchWorker(
      new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { stop: this.stopFlag.buffer },
        // A small heap: the worker holds one batch's list at a time.
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 },
      }),
    );
    this.finished = this.run(dir, items);
  }

  private async run(dir: string, items: readonly FillItem[]): Promise<void> {
    const w = this.worker;
    const failure = new Promise<never>((_, reject) => w.once('error', reject));
    failure.catch(() => undefined);
    try {
      for (let i = 0, id = 0; i < items.length && Atomics.load(this.stopFlag, 0) === 0; i += BATCH, id++) {
        const reply = new Promise<FillReply>((resolve) => {
          const on = (r: FillReply): void => {
            if (r.id !== id) return;
            w.off('message', on);
            resolve(r);
          };
          w.on('message', on);
        });
        w.postMessage({ id, dir, items: items.slice(i, i + BATCH) });
        const r = await Promise.race([reply, failure]);
        this.made += r.made;
        if (r.failed) {
          this.failed = r.failed;
          return;
        }
      }
    } catch (e) {
      this.failed = (e as Error).message;
    } finally {
      await w.terminate();
    }
  }

  /** Ends the fill after the file the worker has in hand and waits for it. */
  async stop(): Promise<PoolFillResult> {
    Atomics.store(this.stopFlag, 0, 1);
    await this.finished;
    return { made: this.made, ...(this.failed !== undefined ? { failed: this.failed } : {}) };
  }
}
