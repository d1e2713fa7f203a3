/**
 * Giving the event loop a turn from long stretches of synchronous work. Several of kiln's walks
 * (the context digest, the COPY's file-pool plan) share the main thread with chains of short I/O
 * steps running beside them (the isolation probe's child processes, a base extraction); done in one
 * go, a 5,000-file walk held those back by 100-140 ms.
 */

/** Resolves after one turn: the I/O callbacks and timers that are due run first. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Yields a turn once `sliceMs` of work has passed since the last one, so a walk over many small
 * directories does not pay a turn for each.
 */
export class TimeSlicer {
  private last = Date.now();

  constructor(private readonly sliceMs = 2) {}

  async maybeYield(): Promise<void> {
    if (Date.now() - this.last < this.sliceMs) return;
    await nextTurn();
    this.last = Date.now();
  }
}
