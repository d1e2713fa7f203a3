/**
 * The build entry point every adapter calls: frontend → plan → execute → assemble → publish.
 * Wires the real filesystem, isolation and registry parts into the executor.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { BuildOptions } from './options.ts';
import type { BuildResult } from './result.ts';
import type { Logger } from './log/logger.ts';
import { KilnError } from './util/errors.ts';
import { loadDockerfile } from './plan/load.ts';
import type { BuildPlan } from './plan/plan.ts';
import { hostPlatform } from './image/platform.ts';
import type { LayerBlob, Platform } from './image/types.ts';
import {
  assemblePlatforms,
  checkEmulation,
  planTargets,
  publishPlatforms,
  targetPlatforms,
} from './platform-build.ts';
import { contextIgnore, IgnoreMatcher } from './context/dockerignore.ts';
import { ContextSource } from './context/sources.ts';
import { materializeContext } from './context/fetch.ts';
import { probeIsolation, formatProbe, SINGLE_ID_LIMITS } from './isolation/probe.ts';
import type { ProbeResult, Rung } from './isolation/types.ts';
import { createSandbox } from './isolation/sandbox.ts';
import { inInitialUserNamespace } from './isolation/tools.ts';
import { SINGLE_ID_ENV, fullMapHint, invokingUser } from './isolation/userns.ts';
import { createSnapshotter } from './fs/snapshotter.ts';
import { ensureWorkDir } from './fs/work-dir.ts';
import { spreadSubdirs } from './fs/spread-dirs.ts';
import { createWalkSnapshotter } from './fs/snapshot-walk.ts';
import { writeLayer } from './fs/layer-writer.ts';
import { extractLayer, type ExtractOptions } from './fs/extract.ts';
import { inflateGzipFile } from './fs/zstd.ts';
import { removeTree, removeTreeInBackground } from './fs/remove-tree.ts';
import { RegistryClient } from './registry/client.ts';
import { CredentialStore } from './registry/credentials.ts';
import { RegistryImageSource } from './executor/registry-source.ts';
import { LocalCacheStore } from './cache/local-store.ts';
import { BaseImageCache } from './cache/base-cache.ts';
import { TREE_STORE_DIR, TreeStore } from './cache/tree-store.ts';
import { RegistryCacheStore, TieredCache } from './cache/registry-store.ts';
import { StatIndex } from './cache/sources-digest.ts';
import type { LayerCache } from './cache/types.ts';
import { parseReference } from './registry/reference.ts';
import { executePlatforms, type PlatformTarget } from './executor/platforms.ts';
import { prepareSupplyChain, publishWithSupplyChain, type SupplyChain } from './supply-chain.ts';
import type { ExtractOptions as ExtractFrom, TreeSharing } from './executor/deps.ts';
import { lateDeps, type BoundIsolation } from './late-isolation.ts';
import type { StepProgress } from './executor/build-run.ts';
import type { TransferProgress } from './log/transfer.ts';

export interface RunBuildHooks {
  /** RUN output (already redacted). Default: stderr. */
  onOutput?: (chunk: Buffer) => void;
  /** Step numbering and step-end lines (the CLI's). */
  progress?: StepProgress;
  /** Bytes of pulls, pushes and base extractions (the CLI's bar or progress lines). */
  transfers?: TransferProgress;
}

export async function runBuild(
  opts: BuildOptions,
  logger: Logger,
  hooks: RunBuildHooks = {},
): Promise<BuildResult> {
  const started = Date.now();
  const supply = await prepareSupplyChain(opts, logger);
  for (const c of opts.registry.credentials) logger.addSecret(c.password);
  // A bad destination or cache dir is a usage error now, not a failure after the whole build.
  for (const d of opts.output.destinations) parseReference(d);
  if (opts.cache.dir) await ensureCacheDir(resolve(opts.cache.dir));
  await ensureWorkDir(opts.workDir);
  const ctx = await materializeContext(
    opts,
    resolve(opts.workDir, `context-${process.pid}-${Date.now()}`),
    logger,
  );
  // The fetched context (git, tar) is removed whatever fails, parse errors included.
  try {
    return await buildInContext(ctx.dir, opts, logger, hooks, { started, supply });
  } finally {
    await ctx.cleanup();
  }
}

/** The Dockerfile found, planned for this build's platforms (one plan each; `plan` is the first's). */
export async function planDockerfile(
  contextDir: string,
  opts: BuildOptions,
): Promise<{
  plan: BuildPlan;
  targets: PlatformTarget[];
  /** Whether --platform named the targets (else the one target is the host). */
  explicit: boolean;
  dockerfilePath: string;
  dockerfileText: string;
  targetPlatform: Platform;
  buildPlatform: Platform;
}> {
  const df = await loadDockerfile(contextDir, opts.dockerfile);
  const buildPlatform = hostPlatform();
  const { platforms, explicit } = targetPlatforms(opts);
  const targets = planTargets(df.text, df.path, opts, platforms, buildPlatform);
  return {
    plan: targets[0]!.plan,
    targets,
    explicit,
    dockerfilePath: df.path,
    dockerfileText: df.text,
    targetPlatform: targets[0]!.platform,
    buildPlatform,
  };
}

/**
 * The build's own dir: only the build user may list it (the trees hold the image's setuid-root
 * files); its name has a random part because the plain rung's PRoot mode makes it enterable by all.
 */
async function makeBuildDir(workDir: string): Promise<string> {
  // Each build's trees in block groups of their own, not where the last build's were just removed
  // (spread-dirs.ts): ext4 spreads a +T dir's children from a hash of their (here random) names.
  spreadSubdirs([workDir]);
  const dir = resolve(workDir, `build-${process.pid}-${Date.now()}-${randomBytes(8).toString('hex')}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  return dir;
}

async function buildInContext(
  contextDir: string,
  opts: BuildOptions,
  logger: Logger,
  hooks: RunBuildHooks,
  { started, supply }: { started: number; supply: SupplyChain },
): Promise<BuildResult> {
  const { plan, targets, explicit, dockerfilePath, dockerfileText, targetPlatform, buildPlatform } =
    await planDockerfile(contextDir, opts);
  checkEmulation(targets, buildPlatform, logger);
  for (const w of plan.warnings) logger.warn(`${w.at ? `${w.at.file}:${w.at.line}: ` : ''}${w.message}`);
  if (plan.unusedBuildArgs.length) {
    logger.warn(`build arg(s) ${plan.unusedBuildArgs.join(', ')} were passed but no ARG declares them`);
  }
  const patterns = await contextIgnore(contextDir, dockerfilePath, opts.cache.dir);
  const context = new ContextSource(contextDir, new IgnoreMatcher(patterns));

  const workDir = await makeBuildDir(opts.workDir);
  // The probe runs while the executor starts: what needs its choice waits for it (late-isolation.ts).
  const probing = chooseIsolation(opts, workDir, logger);
  const deps = lateDeps(
    probing.then(({ probe }) => bindIsolation(probe, opts, plan, workDir, logger)),
    { writeLayer, inflateLayer: inflateGzipFile },
  );
  const onOutput = hooks.onOutput ?? ((c: Buffer) => void process.stderr.write(c));
  const client = buildClient(opts, logger, hooks);
  try {
    const images = new RegistryImageSource(
      client,
      join(workDir, 'blobs'),
      opts.cache.dir ? new BaseImageCache(resolve(opts.cache.dir)) : undefined,
      logger,
    );
    const cache = await openCache(opts, client, workDir, logger);
    const executedAll = await executePlatforms(
      {
        opts,
        deps,
        images,
        context,
        logger,
        workDir,
        buildPlatform,
        ...hooks, // progress (step numbers), transfers (bytes)
        onOutput,
        ...(cache ? { cache } : {}),
      },
      targets,
    );
    // Also when no step needed a sandbox: a build where none works fails as it always did.
    const { probe, chosen } = await probing;
    await cache?.index.save();
    const built = assemblePlatforms(opts, executedAll, explicit);
    const isolation = { rung: probe.chosen, reason: chosen.reason };
    const steps = executedAll.flatMap((e) => e.steps);
    const size = built.reduce(
      (n, image) => n + image.configBytes.length + image.layers.reduce((m, l) => m + l.descriptor.size, 0),
      0,
    );
    if (built.length > 1) {
      const fetchLayer = (l: LayerBlob): Promise<string> => images.fetchLayer(l);
      const out = await publishPlatforms(opts, built, client, logger, fetchLayer, supply, {
        dockerfileText,
        buildPlatform,
        started,
        executed: executedAll,
      });
      return {
        ...out,
        imageId: built[0]!.manifest.config.digest,
        pushed: !opts.output.noPush && out.destinations.length > 0,
        size,
        layers: built[0]!.layers.length,
        isolation,
        steps,
        durationMs: Date.now() - started,
      };
    }
    const image = built[0]!;
    const executed = executedAll[0]!;
    const ctx = { image, dockerfileText, targetPlatform, buildPlatform, executed, started, supply };
    const { published, report } = await publishWithSupplyChain(opts, ctx, client, logger, images);
    return {
      digest: published.digest,
      ...report,
      imageId: image.manifest.config.digest,
      destinations: published.destinations,
      pushed: !opts.output.noPush && published.destinations.length > 0,
      size,
      layers: image.layers.length,
      isolation,
      steps,
      durationMs: Date.now() - started,
    };
  } finally {
    // A probe still running (the build failed early) has mounts in the work dir: let it clean up.
    await probing.catch(() => undefined);
    await client.close();
    // --cleanup (Kaniko's flag) waits for the work dir to be gone; by default it goes in the background.
    if (opts.cleanup) await removeTree(workDir);
    else if (!process.env.KILN_KEEP_WORKDIR && !(await removeTreeInBackground(workDir)))
      await removeTree(workDir);
  }
}

/** The parts of the build that depend on the rung and snapshot engine the probe chose. */
function bindIsolation(
  probe: ProbeResult & { chosen: Rung },
  opts: BuildOptions,
  plan: BuildPlan,
  workDir: string,
  logger: Logger,
): BoundIsolation {
  const engine = probe.snapshot;
  const singleId = probe.chosen === 'rootless' && probe.fullIdMap === false;
  // No mknod in a user namespace, whatever the id map.
  const skipDevices = probe.chosen === 'rootless' || !inInitialUserNamespace();
  const extract = baseExtractor(wantsInsecure(plan), singleId, logger);
  return {
    sandbox: createSandbox(probe.chosen, {
      workDir: join(workDir, 'sandbox'),
      onWarning: (m) => logger.warn(m),
      ...(probe.plainProc ? { plainProc: probe.plainProc } : {}),
      ...(probe.keepUtsName ? { keepUtsName: true } : {}),
    }),
    createSnapshotter: (rootfs, scratch) => createSnapshotter(engine, rootfs, scratch),
    // A whole-stage snapshot must survive the per-step overlays in between: only a walk can.
    beginTreeSnapshot: (rootfs, exclude) => createWalkSnapshotter(rootfs).begin({ exclude }),
    extractLayer: (blobPath, rootfs, o) => extract(blobPath, rootfs, { ...o, skipDevices }),
    sharing: baseTreeSharing(
      opts,
      engine,
      `${probe.chosen}${singleId ? '-single-id' : ''}`,
      wantsInsecure(plan),
      logger,
    ),
  };
}

/** How the build applies base and stage layers to its trees. */
function baseExtractor(
  createDevices: boolean,
  singleId: boolean,
  logger: Logger,
): (blobPath: string, rootfs: string, o: ExtractOptions & ExtractFrom) => Promise<void> {
  let chownSkips = 0;
  return async (blobPath, rootfs, { stream, ...o }) => {
    await extractLayer(stream ?? createReadStream(blobPath), rootfs, {
      ...o, // onRead
      createDevices,
      onSkipped: (p, why) => logger.debug(`device node ${p}: ${why}`),
      // podman's ignore_chown_errors: the layer blob stays as pulled; only the tree has root owners.
      ignoreChownErrors: singleId,
      onChownSkipped: (p, uid, gid) => {
        if (chownSkips++ === 0)
          logger.warn(
            `single-id map: ${p} is owned by ${uid}:${gid} in the image, by root in the build tree (chown to an unmapped id skipped, as podman's ignore_chown_errors does); RUN steps see every such file owned by root`,
          );
        else logger.debug(`single-id map: chown of ${p} to ${uid}:${gid} skipped`);
      },
    });
  };
}

/** The isolation rung and snapshot engine the probe chose, with what the user should know about them. */
async function chooseIsolation(
  opts: BuildOptions,
  workDir: string,
  logger: Logger,
): Promise<{ probe: ProbeResult & { chosen: Rung }; chosen: { reason: string } }> {
  const probe = await probeIsolation({
    want: opts.isolation,
    workDir,
    needZstd: opts.compression === 'zstd',
    stopAtChosen: true,
  });
  if (!probe.chosen) {
    throw new KilnError('isolation', 'NO_ISOLATION', `no sandbox works here:\n${formatProbe(probe)}`, {
      hint: 'run kiln as root, or allow user namespaces',
    });
  }
  const chosen = probe.reports.find((r) => r.rung === probe.chosen)!;
  logger.info(`isolation: ${probe.chosen} (${chosen.reason}); snapshots: ${probe.snapshot}`);
  if (probe.snapshotFallback && probe.snapshotNote) logger.warn(probe.snapshotNote);
  if (probe.chosen === 'rootless' && probe.fullIdMap === false) {
    const why = process.env[SINGLE_ID_ENV] ?? 'not a full subordinate id map';
    logger.warn(`only one user id is mapped (${why}): ${SINGLE_ID_LIMITS}; ${fullMapHint(invokingUser())}`);
  }
  for (const r of probe.reports)
    if (r.rung !== probe.chosen) logger.debug(`isolation ${r.rung}: ${r.ok ? 'available' : r.reason}`);
  return { probe: { ...probe, chosen: probe.chosen }, chosen };
}

/** The build's registry client; the hooks hear of the bytes of its pulls and pushes. */
function buildClient(opts: BuildOptions, logger: Logger, hooks: RunBuildHooks): RegistryClient {
  const progress = hooks.transfers;
  return new RegistryClient({
    registry: opts.registry,
    credentials: credentialStore(opts),
    logger,
    progress,
  });
}

/**
 * The layer cache: `--cache-dir` (a directory CI caches save) and/or `--cache-repo` (a registry
 * repository). `--cache` with neither uses `<first destination>/cache`, as Kaniko does.
 */
async function openCache(
  opts: BuildOptions,
  client: RegistryClient,
  workDir: string,
  logger: Logger,
): Promise<{ store: LayerCache; index: StatIndex } | undefined> {
  if (!opts.cache.enabled) return undefined;
  const stores: LayerCache[] = [];
  let indexFile: string | undefined;
  if (opts.cache.dir) {
    const dir = resolve(opts.cache.dir);
    await mkdir(dir, { recursive: true });
    stores.push(
      new LocalCacheStore(dir, {
        ttlHours: opts.cache.ttlHours,
        logger,
        ...(opts.cache.maxSizeBytes !== undefined ? { maxSizeBytes: opts.cache.maxSizeBytes } : {}),
      }),
    );
    indexFile = join(dir, 'stat-index.json');
  }
  let repo = opts.cache.repo;
  if (!repo && !opts.cache.dir && opts.output.destinations[0]) {
    const d = parseReference(opts.output.destinations[0]);
    repo = `${d.registry}/${d.repository}/cache`;
  }
  if (repo) {
    const r = parseReference(repo);
    stores.push(new RegistryCacheStore(client, r, join(workDir, 'blobs'), !opts.cache.noPushCache));
  }
  if (stores.length === 0) {
    logger.warn(
      '--cache is on but there is nowhere to keep it: pass --cache-dir or --cache-repo (or a --destination)',
    );
    return undefined;
  }
  logger.info(
    `cache: ${[opts.cache.dir ? `dir ${opts.cache.dir}` : '', repo ? `repo ${repo}` : ''].filter(Boolean).join(', ')}`,
  );
  const index = new StatIndex(indexFile);
  await index.load();
  return { store: stores.length === 1 ? stores[0]! : new TieredCache(stores), index };
}

function credentialStore(opts: BuildOptions): CredentialStore {
  const explicit: Record<string, { username: string; password: string }> = {};
  for (const c of opts.registry.credentials)
    explicit[c.registry] = { username: c.username, password: c.password };
  return new CredentialStore({
    explicit,
    ...(opts.registry.dockerConfigDir ? { dockerConfigDir: opts.registry.dockerConfigDir } : {}),
  });
}

/** BuildKit's opt-in to devices in the build tree (and more): some RUN asks for --security=insecure. */
function wantsInsecure(plan: BuildPlan): boolean {
  return plan.stages.some((st) =>
    st.instructions.some((i) => i.instruction.kind === 'run' && i.instruction.security === 'insecure'),
  );
}

async function ensureCacheDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    if (!(await stat(dir)).isDirectory())
      throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (e) {
    throw new KilnError(
      'usage',
      'BAD_DIRECTORY',
      `--cache-dir ${dir}: cannot use it (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      {
        hint: 'pass a directory (or a path where one can be made) that this user can write',
        cause: e,
      },
    );
  }
}

/**
 * Hard-link clones of base trees, within the build and, with a cache dir, across builds through the
 * extracted-tree store in `<cache-dir>/trees`: only with the overlay engine, whose stage trees are never
 * written in place, so shared files stay intact.
 */
function baseTreeSharing(
  opts: BuildOptions,
  engine: string,
  rung: string,
  createDevices: boolean,
  logger: Logger,
): TreeSharing {
  if (engine !== 'overlay') return { linkBaseTrees: false };
  if (!opts.cache.dir || opts.cache.treeStoreMiB <= 0) return { linkBaseTrees: true };
  const devices =
    rung.startsWith('rootless') || !inInitialUserNamespace() ? 'nodev' : createDevices ? 'mknod' : 'dev';
  return {
    linkBaseTrees: true,
    trees: new TreeStore({
      dir: join(resolve(opts.cache.dir), TREE_STORE_DIR),
      identity: `uid${process.getuid?.() ?? 0}-${rung}-${devices}`,
      maxBytes: opts.cache.treeStoreMiB * 1024 * 1024,
      debug: (m) => logger.debug(m),
    }),
  };
}
