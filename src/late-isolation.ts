/**
 * The executor's isolation-dependent parts bound to a probe that may still be running. The probe's
 * trial RUN takes 100-300 ms; a build that starts executing meanwhile resolves its bases, keys its
 * steps and looks them up in the cache (as long again on a one-file rebuild) before anything needs
 * a sandbox, a snapshot engine or a tree. Each part waits for the probe when first used, and is
 * then exactly what the probe chose: nothing runs on a guess.
 */
import type { ExecutorDeps, ExtractOptions, TreeSharing } from './executor/deps.ts';
import type { Snapshotter, StepSnapshot } from './fs/types.ts';
import type { Sandbox } from './isolation/types.ts';
import { KilnError } from './util/errors.ts';

/** What the probe's choice gives the executor. */
export interface BoundIsolation {
  sandbox: Sandbox;
  createSnapshotter(rootfs: string, scratchDir: string): Snapshotter;
  beginTreeSnapshot(rootfs: string, exclude: string[]): Promise<StepSnapshot>;
  extractLayer(blobPath: string, rootfs: string, opts: ExtractOptions): Promise<void>;
  sharing: TreeSharing;
}

export function lateDeps(
  bound: Promise<BoundIsolation>,
  direct: Pick<ExecutorDeps, 'writeLayer' | 'inflateLayer'>,
): ExecutorDeps {
  let value: BoundIsolation | undefined;
  const ready = bound.then((b) => {
    value = b;
  });
  // Whoever needs the parts awaits this (the builder always does): a failed probe is never unhandled.
  ready.catch(() => undefined);
  const now = (what: string): BoundIsolation => {
    if (value) return value;
    throw new KilnError(
      'internal',
      'ISOLATION_NOT_READY',
      `${what} was needed before the isolation probe had chosen`,
      { hint: 'this is a bug in kiln: report it with the Dockerfile' },
    );
  };
  const sandbox: Sandbox = {
    get rung() {
      return now('the sandbox rung').sandbox.rung;
    },
    run: async (spec) => {
      await ready;
      return now('the sandbox').sandbox.run(spec);
    },
  };
  return {
    ready: () => ready,
    sharing: () => now('tree sharing').sharing,
    createSnapshotter: (rootfs, scratchDir) => {
      let real: Snapshotter | undefined;
      const get = (): Snapshotter =>
        (real ??= now('the snapshot engine').createSnapshotter(rootfs, scratchDir));
      return {
        get engine() {
          return get().engine;
        },
        begin: async (o) => {
          await ready;
          return get().begin(o);
        },
      };
    },
    beginTreeSnapshot: async (rootfs, exclude) => {
      await ready;
      return now('a tree snapshot').beginTreeSnapshot(rootfs, exclude);
    },
    sandbox,
    writeLayer: direct.writeLayer,
    inflateLayer: direct.inflateLayer,
    extractLayer: async (blobPath, rootfs, o) => {
      await ready;
      return now('a layer extraction').extractLayer(blobPath, rootfs, o);
    },
  };
}
