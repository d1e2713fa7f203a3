/**
 * A stage's rootfs made real only when something needs it: a step that touches the filesystem, or
 * another stage reading it (COPY --from, RUN --mount from=). Until then cache hits only queue their
 * layer blobs, so a fully cached stage never extracts its base image at all. With a tree store the
 * tree is cloned from an earlier build's extraction of the same layers when one is kept.
 */

/** Trees kept between builds, by the diff ids of the layers that give them (src/cache/tree-store.ts). */
export interface TreeReuse {
  /** The diff ids whose layers give the base tree; undefined when layers do not describe it. */
  baseLayers: readonly string[] | undefined;
  /** Clones the kept tree of these layers into the (empty) rootfs; false when none is kept. */
  restore(diffIds: readonly string[]): Promise<boolean>;
  /** Keeps the rootfs, the tree these layers give, for later builds. */
  keep(diffIds: readonly string[]): Promise<void>;
}

interface PendingLayer {
  blob: string;
  diffId: string | undefined;
  /** The blob's digest check still running (CacheHit.verified): nothing reads it before. */
  verified: Promise<void> | undefined;
}

/** What a LazyRootfs may also be given. */
export interface LazyRootfsHooks {
  /** Called once the tree is real and complete (the single-snapshot baseline). */
  onReal?: () => Promise<void>;
  reuse?: TreeReuse;
  /** Waited for before anything else: what the tree needs may still be being decided (ExecutorDeps.ready). */
  ready?: () => Promise<void>;
  /**
   * Puts a base tree made ahead of time (base-prefetch.ts) in place; false when there is none.
   * Asked only when no cached layer is queued: a kept tree of base + those layers beats it.
   */
  prepared?: () => Promise<boolean>;
  /**
   * Started for each queued layer while the base is made from scratch (nothing kept): resolves with
   * what to extract instead of the blob (its inflated tar, or the blob itself).
   */
  ahead?: (blob: string) => Promise<string>;
}

export class LazyRootfs {
  private readonly pending: PendingLayer[] = [];
  private real: Promise<void> | undefined;

  constructor(
    /** Puts the base tree (image, parent stage or nothing) in place. */
    private readonly materializeBase: () => Promise<void>,
    /** Applies one layer blob (or what `ahead` made of it) on top of the tree. */
    private readonly extract: (blob: string) => Promise<void>,
    private readonly hooks: LazyRootfsHooks = {},
  ) {}

  private get reuse(): TreeReuse | undefined {
    return this.hooks.reuse;
  }

  /** True once making the tree real has started. */
  get isReal(): boolean {
    return this.real !== undefined;
  }

  /** Makes the tree real: base, then every queued layer in order. Safe to call many times. */
  ensure(): Promise<void> {
    this.real ??= (async () => {
      await this.hooks.ready?.();
      const kept =
        this.pending.length === 0 && (await this.hooks.prepared?.())
          ? { layers: 0, cloneMs: 0 }
          : await this.restoreKept();
      const rest = this.pending.slice(kept?.layers ?? 0);
      const t = Date.now();
      await this.applyRest(rest, kept === undefined);
      const extractMs = Date.now() - t;
      const ids = this.layerIds();
      // Keeping costs about what the clone cost (hard links and directories, no file data): only
      // worth it when the layers it would spare took longer. The small WORKDIR and COPY layers over
      // a kept apt tree took 4 ms against a 170 ms clone and a 600 ms keep.
      const worth = kept === undefined || (kept.layers < this.pending.length && extractMs > kept.cloneMs);
      if (ids && ids.length > 0 && worth) await this.reuse!.keep(ids);
      this.pending.length = 0;
      await this.hooks.onReal?.();
    })();
    return this.real;
  }

  /**
   * The base first when nothing kept covers it, then the queued layers, each only once its digest
   * is checked. While a base is made from scratch those layers inflate meanwhile, one after the
   * other (hooks.ahead), so that a cold runner's cached apt layer (35 MB of gzip, 1 s to inflate)
   * is ready to apply when the base extraction (2 s) ends; every inflation settles before this
   * returns, and one that failed leaves its blob to be extracted as it is.
   */
  private async applyRest(rest: PendingLayer[], withBase: boolean): Promise<void> {
    const ahead = withBase && rest.length > 0 ? this.hooks.ahead : undefined;
    let chain: Promise<unknown> = Promise.resolve();
    const made = rest.map((p) => {
      if (!ahead) return Promise.resolve(p.blob);
      const next = chain.then(async () => {
        await p.verified;
        return ahead(p.blob);
      });
      chain = next.catch(() => undefined);
      return next.catch(() => p.blob);
    });
    try {
      if (withBase) await this.materializeBase();
      for (const [i, p] of rest.entries()) {
        await p.verified;
        await this.extract(await made[i]!);
      }
    } finally {
      await chain;
    }
  }

  /** The diff ids of base + queued layers, when every one is known. */
  private layerIds(): string[] | undefined {
    const base = this.reuse?.baseLayers;
    if (!base || this.pending.some((p) => p.diffId === undefined)) return undefined;
    return [...base, ...this.pending.map((p) => p.diffId!)];
  }

  /**
   * Clones the longest kept prefix that holds at least the base: base + every queued layer, then one
   * layer fewer, down to the base alone. Returns how many queued layers the clone covers and what it
   * took, or undefined when nothing was kept (then the base is built).
   */
  private async restoreKept(): Promise<{ layers: number; cloneMs: number } | undefined> {
    const ids = this.layerIds();
    if (!ids || !this.reuse) return undefined;
    const baseCount = ids.length - this.pending.length;
    for (let n = ids.length; n >= Math.max(baseCount, 1); n--) {
      const t = Date.now();
      if (await this.reuse.restore(ids.slice(0, n)))
        return { layers: n - baseCount, cloneMs: Date.now() - t };
    }
    return undefined;
  }

  /**
   * Keeps the tree as it is now, which these layers give (base + every step so far): after a step
   * that is slow to run again (a RUN that missed the cache), so the next build clones it.
   */
  async keepNow(diffIds: readonly string[]): Promise<void> {
    if (this.real && this.reuse && diffIds.length > 0) {
      await this.real;
      await this.reuse.keep(diffIds);
    }
  }

  /** A cached layer: queued while the tree is not real, applied at once when it is. */
  async addLayer(blob: string, diffId?: string, verified?: Promise<void>): Promise<void> {
    if (!this.real) {
      this.pending.push({ blob, diffId, verified });
      return;
    }
    await this.real;
    await verified;
    await this.extract(blob);
  }
}
