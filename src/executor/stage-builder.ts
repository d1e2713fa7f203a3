/**
 * Builds one stage: holds its rootfs, config, layers and history, and offers the operations every
 * instruction is made of (run a command, copy files, change metadata). Each filesystem-changing
 * operation goes through the snapshotter, so a layer is exactly what the step changed.
 */
import { mkdir, rm, rmdir, lstat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { ExecutorDeps } from './deps.ts';
import type { HistoryEntry, ImageConfig, LayerBlob } from '../image/types.ts';
import type { Diff, LayerWriteOptions } from '../fs/types.ts';
import type { MountSpec, RunResult } from '../isolation/types.ts';
import type { Logger } from '../log/logger.ts';
import { resolveInRoot } from '../fs/rootpath.ts';
import { isExcluded } from '../fs/exclude.ts';
import { resolveUser } from './passwd.ts';
import { KilnError, type SourcePosition } from '../util/errors.ts';
import { nextTurn } from '../util/event-loop.ts';
import { inInitialUserNamespace, mappedIdCount } from '../isolation/tools.ts';
import { SINGLE_ID_ENV, USER_ENV, fullMapHint } from '../isolation/userns.ts';

/** The RUN failure hint: the output tail, and how to get a full id map when chown hit a single-id one. */
function runFailureHint(tail: string[]): string | undefined {
  const parts: string[] = [];
  if (tail.length > 0) parts.push(`last output:\n    ${tail.join('\n    ')}`);
  const text = tail.join('\n');
  if (
    /Invalid argument|EINVAL/.test(text) &&
    /chown|chgrp|owner|group/i.test(text) &&
    !inInitialUserNamespace() &&
    mappedIdCount() < 65536
  ) {
    const user = process.env[USER_ENV] ?? 'USER';
    const why = process.env[SINGLE_ID_ENV];
    parts.push(
      `only ${mappedIdCount()} user id(s) are mapped in kiln's user namespace${why ? ` (${why})` : ''}, so files cannot be given to other ids; ` +
        `${fullMapHint(user)}, and build again`,
    );
  }
  return parts.length > 0 ? parts.join('\n') : undefined;
}

/** Paths never captured in a layer, whatever a step does to them. */
export const ALWAYS_EXCLUDED = ['/proc', '/sys', '/dev'];

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface StageBuilderOptions {
  name: string;
  rootfs: string;
  scratchDir: string;
  config: ImageConfig;
  history: HistoryEntry[];
  layerOptions: Omit<LayerWriteOptions, 'outDir'> & { outDir: string };
  ignorePaths: string[];
  /** Clamp for history timestamps (--reproducible / --timestamp). */
  createdAt: () => string | undefined;
  hostname: string;
  /**
   * False when nothing will ever read this stage's layers (no cache, and the stage is not the target
   * or an ancestor of it): steps still change the tree, but no blob is written or compressed.
   */
  writeLayers?: boolean;
  /**
   * --single-snapshot: steps change the tree but make no layer of their own (history entries are
   * empty); the stage's one layer is committed at its end with commitStageSnapshot.
   */
  deferLayers?: boolean;
  hostsFile?: string;
  resolvConfFile?: string;
}

export interface RunStepOptions {
  argv: string[];
  /** Extra `KEY=value` pairs visible to this RUN only (build args in scope); ENV wins over them. */
  extraEnv: string[];
  /**
   * `KEY=value` pairs that win over the image's ENV: secrets mounted with env=, which BuildKit's
   * ExecOp appends after the config's Env (solver/llbsolver/ops/exec.go, loadSecretEnv).
   */
  overrideEnv?: string[];
  mounts: MountSpec[];
  network: 'default' | 'none' | 'host';
  /** RUN --security=insecure: every capability. */
  insecure?: boolean;
  history: string;
  position: SourcePosition;
  signal?: AbortSignal;
  onOutput?: (chunk: Buffer) => void;
}

export class StageBuilder {
  readonly name: string;
  readonly rootfs: string;
  config: ImageConfig;
  readonly layers: LayerBlob[];
  readonly history: HistoryEntry[];
  /** Set by CMD in this stage; ENTRYPOINT keeps such a CMD (BuildKit's rule). */
  cmdSetInStage = false;
  private readonly snapshotter;
  /**
   * Layers still being written (a COPY's, while the next RUN runs) and what waits on them, in order.
   * Never rejects: a failure is kept in `backgroundError` and thrown by the next settle().
   */
  private background: Promise<void> = Promise.resolve();
  private backgroundError: unknown;

  constructor(
    private readonly deps: ExecutorDeps,
    private readonly opts: StageBuilderOptions,
    private readonly logger: Logger,
  ) {
    this.name = opts.name;
    this.rootfs = opts.rootfs;
    this.config = opts.config;
    this.layers = [];
    this.history = [...opts.history];
    this.snapshotter = deps.createSnapshotter(opts.rootfs, opts.scratchDir);
  }

  get engine(): string {
    return this.snapshotter.engine;
  }

  /** The environment a RUN sees: the image's Env (PATH defaulted as Docker does) plus `extra`. */
  runEnv(extra: string[], override: string[] = []): string[] {
    const keyOf = (e: string): string => e.slice(0, e.indexOf('='));
    const overridden = new Set(override.map(keyOf));
    const env = (this.config.config?.Env ?? []).filter((e) => !overridden.has(keyOf(e)));
    const has = (k: string) => env.some((e) => e.startsWith(`${k}=`)) || overridden.has(k);
    if (!has('PATH')) env.unshift(`PATH=${DEFAULT_PATH}`);
    for (const e of extra) {
      // ENV wins over ARG of the same name, as in Docker.
      if (!has(keyOf(e))) env.push(e);
    }
    return [...env, ...override];
  }

  async run(step: RunStepOptions): Promise<void> {
    await this.deps.ready();
    const exclude = this.excludes(step.mounts.map((m) => m.target));
    // An overlay RUN writes only to its upper dir until finish(), so a layer still being read from
    // the rootfs may go on meanwhile; other engines write the rootfs in place.
    const overlaps = this.snapshotter.engine === 'overlay';
    if (!overlaps) await this.settle();
    const t0 = Date.now();
    const snap = await this.snapshotter.begin({ exclude });
    const t1 = Date.now();
    let result: RunResult;
    const createdTargets: string[] = [];
    try {
      const user = await resolveUser(snap.runRoot, this.config.config?.User ?? '', step.position);
      const cwd = this.config.config?.WorkingDir || '/';
      for (const m of step.mounts) {
        const host = await resolveInRoot(snap.runRoot, m.target);
        if (!(await exists(host))) createdTargets.push(host);
      }
      result = await this.deps.sandbox.run({
        root: snap.runRoot,
        argv: step.argv,
        env: this.runEnv(step.extraEnv, step.overrideEnv),
        cwd,
        uid: user.uid,
        gid: user.gid,
        additionalGids: user.additionalGids,
        mounts: step.mounts,
        network: step.network,
        insecure: step.insecure,
        hostname: this.opts.hostname,
        hostsFile: this.opts.hostsFile,
        resolvConfFile: this.opts.resolvConfFile,
        signal: step.signal,
        onStdout: step.onOutput,
        onStderr: step.onOutput,
      });
      // Mount targets that did not exist before are BuildKit-style stubs: never part of the image.
      for (const t of createdTargets.reverse()) await removeIfEmpty(t);
    } catch (e) {
      await snap.abort();
      throw e;
    }
    if (result.exitCode !== 0) {
      await snap.abort();
      const cmd = step.argv.join(' ');
      throw new KilnError(
        'run',
        'RUN_FAILED',
        `RUN ${cmd.length > 200 ? cmd.slice(0, 200) + '…' : cmd} failed with exit code ${result.exitCode}${result.signal ? ` (signal ${result.signal})` : ''}`,
        {
          position: step.position,
          hint: runFailureHint(this.logger.redact(result.tail.join('\n')).split('\n')),
        },
      );
    }
    const t2 = Date.now();
    await this.settle().catch(async (e: unknown) => {
      await snap.abort();
      throw e;
    });
    const tw = Date.now();
    const diff = await snap.finish();
    const t3 = Date.now();
    await this.commit(diff, step.history);
    this.logger.debug(
      `RUN phases: snapshot begin ${t1 - t0} ms, run ${t2 - t1} ms, ${tw - t2 > 0 ? `earlier layer ${tw - t2} ms, ` : ''}snapshot finish ${t3 - tw} ms, layer ${Date.now() - t3} ms`,
    );
  }

  /** Runs `fn` against the tree the step may change and commits what it changed as one layer. */
  async change(history: string, fn: (root: string) => Promise<void>): Promise<void> {
    await this.settle();
    const t0 = Date.now();
    const snap = await this.snapshotter.begin({ exclude: this.excludes([]) });
    const t1 = Date.now();
    try {
      await fn(snap.runRoot);
    } catch (e) {
      await snap.abort();
      throw e;
    }
    const t2 = Date.now();
    const diff = await snap.finish();
    const t3 = Date.now();
    await this.commit(diff, history);
    this.logger.debug(
      `change phases: snapshot begin ${t1 - t0} ms, apply ${t2 - t1} ms, snapshot finish ${t3 - t2} ms, layer ${Date.now() - t3} ms`,
    );
  }

  /**
   * A step whose writes are all known in advance (COPY and ADD of plain files): `fn` writes straight
   * into the rootfs and returns every image path it wrote, parents included, and that list is the
   * layer. No snapshot at all: no overlay mount, no read-back of an upper dir, no tree walk; creating
   * files directly costs a quarter of creating them through overlayfs. `fn` must replace entries,
   * never write into an existing file: stage trees may share files with a base tree by hard link.
   * A failure leaves the rootfs half-written, which is fine because a failed step ends the build.
   *
   * The layer is written in the background: its history entry and its place among the layers are
   * taken at once, and whatever reads the layer or changes the rootfs settles first. A RUN on the
   * overlay engine runs meanwhile (0.3 s of tar and gzip for a 5,000-file COPY, on another core).
   */
  async changeKnown(history: string, fn: (root: string) => Promise<string[]>): Promise<void> {
    await this.settle();
    const t0 = Date.now();
    const written = await fn(this.rootfs);
    // /proc, /sys and /dev are left out of RUN snapshots because the sandbox mounts over them; a
    // file operation writes real files there and BuildKit's file op keeps them in the layer.
    const excluded = this.opts.ignorePaths;
    const changed = written.filter((p) => !isExcluded(p, excluded)).sort();
    const t1 = Date.now();
    const write = this.reserveLayer({ root: this.rootfs, changed, deleted: [], opaque: [] }, history);
    this.logger.debug(`direct change: apply ${t1 - t0} ms`);
    if (write)
      this.inBackground(async () => {
        const t = Date.now();
        await write();
        this.logger.debug(`direct change: layer ${Date.now() - t} ms (while the next steps went on)`);
      });
  }

  /**
   * Runs `fn` once every layer being written has been written, before anything settle() lets go
   * (the cache entry of a step whose layer is still being written).
   */
  afterLayers(fn: () => Promise<void>): void {
    this.inBackground(fn);
  }

  /** Waits for the layers being written; throws the first failure among them. */
  async settle(): Promise<void> {
    await this.background;
    if (this.backgroundError !== undefined) {
      const e = this.backgroundError;
      this.backgroundError = undefined;
      throw e;
    }
  }

  private inBackground(fn: () => Promise<void>): void {
    this.background = this.background.then(async () => {
      // After a failure nothing more is written: the build is ending.
      if (this.backgroundError !== undefined) return;
      // Let the step that follows start first: a layer's first ~80 ms (stats of every entry) are
      // synchronous and would hold back the RUN's spawn.
      await nextTurn();
      try {
        await fn();
      } catch (e) {
        this.backgroundError = e;
      }
    });
  }

  /**
   * A step answered by the layer cache: its layer (if any) joins the image and its history entry is
   * recorded, without running anything. The caller applies the blob to the rootfs if it needs it.
   */
  applyCached(
    hit: {
      emptyLayer: boolean;
      createdBy: string;
      layer?: { digest: string; diffId: string; size: number; mediaType: string };
    },
    blobPath?: string,
  ): void {
    if (hit.emptyLayer || !hit.layer) {
      this.history.push({ created: this.opts.createdAt(), created_by: hit.createdBy, empty_layer: true });
      return;
    }
    const l = hit.layer;
    this.layers.push({
      descriptor: { mediaType: l.mediaType, digest: l.digest, size: l.size },
      diffId: l.diffId,
      ...(blobPath ? { path: blobPath } : {}),
    });
    this.config.rootfs = { type: 'layers', diff_ids: [...this.config.rootfs.diff_ids, l.diffId] };
    this.history.push({ created: this.opts.createdAt(), created_by: hit.createdBy });
  }

  /** A metadata-only step: history with `empty_layer`, no layer. */
  metadata(history: string, mutate: (cfg: ImageConfig) => void): void {
    mutate(this.config);
    this.history.push({ created: this.opts.createdAt(), created_by: history, empty_layer: true });
  }

  /** --single-snapshot: the whole stage's change as its one layer. */
  async commitStageSnapshot(diff: Diff, history: string): Promise<void> {
    await this.writeOrSkip(diff, history);
  }

  /** Paths no snapshot of this stage may capture (plus a step's mount targets). */
  excludes(mountTargets: string[] = []): string[] {
    return [...ALWAYS_EXCLUDED, ...this.opts.ignorePaths, ...mountTargets.map((t) => posix.normalize(t))];
  }

  private async commit(diff: Diff, history: string): Promise<void> {
    await this.reserveLayer(diff, history)?.();
  }

  private async writeOrSkip(diff: Diff, history: string): Promise<void> {
    await this.reserveOrSkip(diff, history)?.();
  }

  /** reserveOrSkip, or with --single-snapshot only the history entry (the stage's one snapshot takes the change). */
  private reserveLayer(diff: Diff, history: string): (() => Promise<void>) | undefined {
    if (this.opts.deferLayers) {
      this.history.push({ created: this.opts.createdAt(), created_by: history, empty_layer: true });
      return undefined;
    }
    return this.reserveOrSkip(diff, history);
  }

  /**
   * Records the step's history entry and takes its layer's place at once; the returned function
   * writes the layer into that place. Undefined when no layer is made.
   */
  private reserveOrSkip(diff: Diff, history: string): (() => Promise<void>) | undefined {
    if (diff.changed.length === 0 && diff.deleted.length === 0 && diff.opaque.length === 0) {
      this.history.push({ created: this.opts.createdAt(), created_by: history, empty_layer: true });
      return undefined;
    }
    this.history.push({ created: this.opts.createdAt(), created_by: history });
    if (this.opts.writeLayers === false) {
      // Only the tree matters (COPY --from reads it); BuildKit does not export such layers either.
      this.logger.debug(`no layer written: stage ${this.name} is not part of the image`);
      return undefined;
    }
    // Filled in place once written: readers settle() first, and a cache entry holds this object.
    const slot: LayerBlob = { descriptor: { mediaType: '', digest: '', size: 0 }, diffId: '' };
    this.layers.push(slot);
    const idIndex = this.config.rootfs.diff_ids.length;
    this.config.rootfs = { type: 'layers', diff_ids: [...this.config.rootfs.diff_ids, ''] };
    return async () => {
      await mkdir(this.opts.layerOptions.outDir, { recursive: true });
      const layer = await this.deps.writeLayer(diff, this.opts.layerOptions);
      Object.assign(slot, {
        descriptor: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size },
        diffId: layer.diffId,
        path: layer.path,
      });
      const ids = [...this.config.rootfs.diff_ids];
      ids[idIndex] = layer.diffId;
      this.config.rootfs = { type: 'layers', diff_ids: ids };
      this.logger.debug(`layer ${layer.digest} (${layer.entries} entries, ${layer.size} bytes)`);
    };
  }

  /** Host path of an image path in this stage's rootfs, symlinks resolved inside it. */
  hostPath(imagePath: string): Promise<string> {
    return resolveInRoot(this.rootfs, imagePath);
  }
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

async function removeIfEmpty(p: string): Promise<void> {
  const st = await lstat(p).catch(() => null);
  if (!st) return;
  if (st.isDirectory()) await rmdir(p).catch(() => undefined);
  else if (st.size === 0) await rm(p, { force: true });
}
