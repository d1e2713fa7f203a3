/**
 * A stage's rootfs made real only when something needs it: a step that touches the filesystem, or
 * another stage reading it (COPY --from, RUN --mount from=). Until then cache hits only queue their
 * layer blobs, so a fully cached stage never extracts its base image at all.
 */
export class LazyRootfs {
  private readonly pending: string[] = [];
  private real: Promise<void> | undefined;

  constructor(
    /** Puts the base tree (image, parent stage or nothing) in place. */
    private readonly materializeBase: () => Promise<void>,
    /** Applies one layer blob on top of the tree. */
    private readonly extract: (blob: string) => Promise<void>,
    /** Called once the tree is real and complete (the single-snapshot baseline). */
    private readonly onReal: () => Promise<void> = async () => undefined,
  ) {}

  /** True once making the tree real has started. */
  get isReal(): boolean {
    return this.real !== undefined;
  }

  /** Makes the tree real: base, then every queued layer in order. Safe to call many times. */
  ensure(): Promise<void> {
    this.real ??= (async () => {
      await this.materializeBase();
      for (const blob of this.pending) await this.extract(blob);
      this.pending.length = 0;
      await this.onReal();
    })();
    return this.real;
  }

  /** A cached layer: queued while the tree is not real, applied at once when it is. */
  async addLayer(blob: string): Promise<void> {
    if (!this.real) {
      this.pending.push(blob);
      return;
    }
    await this.real;
    await this.extract(blob);
  }
}
