/**
 * COPY and ADD: sources from the context (wildcards, .dockerignore), another stage or an image
 * (--from), heredocs, and for ADD remote URLs (--checksum), git repositories and local tar
 * archives, which are unpacked. --chown/--chmod/--parents/--exclude/--link as Docker defines them.
 * Source selection is copy-sources.ts, archives archive.ts, the file rules ../copy-files.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { dirname, join, posix, relative, sep } from 'node:path';
import type { CopyInstruction } from '../../dockerfile/instructions.ts';
import { IgnoreMatcher, parseDockerignore } from '../../context/dockerignore.ts';
import { resolveInRoot } from '../../fs/rootpath.ts';
import { sourcesDigest } from '../../cache/sources-digest.ts';
import { parseChmod } from '../chmod.ts';
import { copyIntoRoot, type CopyOptions } from '../copy-files.ts';
import { planPoolFill } from '../copy-pool-plan.ts';
import type { FilePool } from '../../fs/file-pool.ts';
import { PoolFill } from '../../fs/pool-fill.ts';
import { layerHistory } from '../history.ts';
import { resolveChown } from '../passwd.ts';
import { configEnv, fromDigest, type KeyHelpers } from '../step-cache.ts';
import { unpackArchive } from './archive.ts';
import { collectSources, isUrl, type CollectedSources } from './copy-sources.ts';
import type { SourceTree, StepContext } from './context.ts';
import { expandInScope } from './expand.ts';
import type { KeyInputs, StepModule } from './module.ts';

/** Skips .dockerignore'd context entries and --exclude matches. */
function skipper(
  ins: CopyInstruction,
  ctx: StepContext,
  tree: SourceTree | undefined,
): (hostPath: string, withinSource: string) => boolean {
  const exclude = ins.exclude.length
    ? new IgnoreMatcher(parseDockerignore(ins.exclude.join('\n'), `${ins.kind.toUpperCase()} --exclude`))
    : undefined;
  const contextSkip = tree === undefined ? ctx.context.skip : undefined;
  return (hostPath, withinSource) => {
    if (contextSkip?.(hostPath)) return true;
    if (!exclude) return false;
    // Inside a copied directory, --exclude matches paths relative to that source (BuildKit's copier).
    if (withinSource !== '') return exclude.matches(withinSource);
    const base = tree?.root ?? ctx.context.dir;
    return exclude.matches(relative(base, hostPath).split(sep).join('/'));
  };
}

/** How copyIntoRoot copies these sources into the stage's tree. */
function copyOptions(
  ins: CopyInstruction,
  ctx: StepContext,
  tree: SourceTree | undefined,
  got: CollectedSources,
  chown: { uid: number; gid: number } | undefined,
  pool: FilePool | undefined,
): CopyOptions {
  const chmodSpec = ins.chmod !== undefined ? parseChmod(ins.chmod, ins.at) : undefined;
  return {
    dest: ins.dest,
    workdir: ctx.builder.config.config?.WorkingDir || '/',
    ...(chown ? { chown } : {}),
    ...(chmodSpec ? { chmod: chmodSpec } : {}),
    preserveOwnership: tree?.preserveOwnership ?? false,
    parents: ins.parents,
    ...(got.mtime ? { mtime: got.mtime } : {}),
    multiple: got.wildcard || got.sources.length + got.archives.length > 1,
    position: ins.at,
    skip: skipper(ins, ctx, tree),
    ...(pool ? { pool } : {}),
  };
}

const stepText = (ins: CopyInstruction): string =>
  `${ins.kind.toUpperCase()} ${ins.from !== undefined ? `--from=${ins.from} ` : ''}${[...ins.sources, ins.dest].join(' ')}`;

/** Fewer files than this are left to the COPY: starting the fill's worker would cost more. */
const FILL_MIN_FILES = 64;

/**
 * Before the tree is real (a cache miss on a stage whose base is still being extracted): the file
 * pool entries this COPY of context files will link are made meanwhile (src/fs/pool-fill.ts). Only a
 * plain COPY from the context: no --from (another tree), --chown (names need the tree's passwd),
 * --parents or heredocs.
 */
async function prepareCopy(
  ins: CopyInstruction,
  ctx: StepContext,
): Promise<(() => Promise<void>) | undefined> {
  if (ins.kind !== 'copy' || ins.from !== undefined || ins.chown !== undefined || ins.parents)
    return undefined;
  if (ins.sources.some((s) => s.startsWith('<<'))) return undefined;
  try {
    const pool = await ctx.filePoolReady?.();
    const dir = pool?.ready();
    // Entries on another filesystem than the tree could never be linked into it.
    if (!pool || !dir || (await stat(dir)).dev !== (await stat(dirname(ctx.builder.rootfs))).dev)
      return undefined;
    const got = await collectSources(ins, ctx, undefined, ctx.tmpDir);
    if (got.archives.length > 0) return undefined;
    const items = await planPoolFill(
      pool,
      got.sources,
      copyOptions(ins, ctx, undefined, got, undefined, undefined),
    );
    if (items.length < FILL_MIN_FILES) return undefined;
    const fill = new PoolFill(dir, items);
    return async () => {
      const r = await fill.stop();
      ctx.logger.debug(
        `[${ctx.builder.name}] ${stepText(ins)}: ${r.made} of ${items.length} files put in the file pool while the tree was made` +
          (r.failed ? ` (stopped: ${r.failed})` : ''),
      );
    };
  } catch (e) {
    // The COPY itself reports what is wrong with its sources.
    ctx.logger.debug(
      `[${ctx.builder.name}] ${stepText(ins)}: no early file pool fill: ${(e as Error).message}`,
    );
    return undefined;
  }
}

export async function copyStep(ins: CopyInstruction, ctx: StepContext): Promise<void> {
  const b = ctx.builder;
  const at = ins.at;
  const tree = ins.from !== undefined ? await ctx.sourceTree(ins.from) : undefined;
  // The stage's tree is real by now (the step touches the filesystem), so its store is known.
  const pool = ctx.filePool?.();
  const tmp = await mkdtemp(join(ctx.tmpDir, 'copy-'));
  try {
    const got: CollectedSources = await collectSources(ins, ctx, tree, tmp);
    const { sources, archives } = got;
    const chown = ins.chown !== undefined ? await resolveChown(b.rootfs, ins.chown, at) : undefined;
    const opts = copyOptions(ins, ctx, tree, got, chown, pool);
    const workdir = opts.workdir;
    const text = stepText(ins);
    const copySources = async (root: string): Promise<string[]> =>
      sources.length === 0 ? [] : (await copyIntoRoot(root, sources, opts)).written;
    const before = pool ? { linked: pool.linked, added: pool.added } : undefined;
    const report = (): void => {
      if (pool && before)
        ctx.logger.debug(
          `[${b.name}] ${text}: ${pool.linked - before.linked} files linked from the file pool, ${pool.added - before.added} added to it`,
        );
    };
    if (archives.length === 0) {
      // Every path the copy writes is known: straight into the rootfs, no snapshot needed.
      await b.changeKnown(layerHistory(text), copySources);
      report();
      return;
    }
    await b.change(layerHistory(text), async (root) => {
      await copySources(root);
      const destAbs = posix.isAbsolute(ins.dest) ? ins.dest : posix.join(workdir, ins.dest);
      for (const [i, a] of archives.entries())
        await unpackArchive(a.hostPath, await resolveInRoot(root, destAbs), join(tmp, `unpacked-${i}.tar`));
    });
    report();
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * What a COPY/ADD observes besides its instruction: the workdir (relative destinations) and the
 * content of its sources: the --from stage's key or image digest, else each context source's files.
 */
async function copyKeyInputs(
  ins: CopyInstruction,
  ctx: StepContext,
  h: KeyHelpers,
): Promise<KeyInputs | null> {
  const src = createHash('sha256');
  if (ins.from !== undefined) {
    src.update(`from:${await fromDigest(ins.from, h)}\0`);
  } else {
    for (const s of ins.sources) {
      if (s.startsWith('<<')) continue;
      if (isUrl(s)) {
        // Without a checksum the content is unknown until downloaded: never cached.
        if (!ins.checksum) return null;
        continue;
      }
      const r = await ctx.context.resolve(s, ins.at);
      src.update(`src:${s}\0${await sourcesDigest(r.sources, h.index, ctx.context.skip)}\0`);
    }
  }
  return { env: configEnv(ctx, h, false), sources: src.digest('hex') };
}

/** COPY and ADD share one module: ADD's extra rules hang on ins.kind === 'add'. */
export const copyModule: StepModule<CopyInstruction> = {
  expand: expandInScope,
  touchesFilesystem: true,
  cache: 'layer',
  cacheAllowed: (opts) => opts.cache.copyLayers,
  keyInputs: copyKeyInputs,
  run: copyStep,
  prepare: prepareCopy,
};
