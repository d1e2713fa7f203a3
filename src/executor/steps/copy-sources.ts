/**
 * COPY and ADD source selection: heredocs, remote URLs and git repositories (ADD), context paths
 * (wildcards, .dockerignore) and paths in another stage or image (--from, wildcards per component).
 * Local archives that ADD must unpack are set apart from the files copied as they are.
 */
import { chmod, lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { CopyInstruction } from '../../dockerfile/instructions.ts';
import { componentRegExp, type CopySource } from '../../context/sources.ts';
import { fetchGitSource } from '../../context/fetch.ts';
import { resolveInRoot } from '../../fs/rootpath.ts';
import { KilnError } from '../../util/errors.ts';
import { fetchUrl } from '../fetch-url.ts';
import { archiveKind } from './archive.ts';
import type { SourceTree, StepContext } from './context.ts';

export const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);
const isGit = (s: string): boolean => /^git@|^git:\/\/|\.git(#.*)?$/.test(s);

export interface CollectedSources {
  /** Copied as they are. */
  sources: CopySource[];
  /** ADD: local tar archives, unpacked into the destination. */
  archives: CopySource[];
  /** A wildcard was used: the destination must be a directory. */
  wildcard: boolean;
  /** ADD of a URL: the file's Last-Modified time. */
  mtime?: Date;
}

const exists = (p: string): Promise<boolean> =>
  lstat(p).then(
    () => true,
    () => false,
  );

/** Every source of `ins`, in order; `tree` is the --from stage or image, undefined for the context. */
export async function collectSources(
  ins: CopyInstruction,
  ctx: StepContext,
  tree: SourceTree | undefined,
  tmp: string,
): Promise<CollectedSources> {
  const out: CollectedSources = { sources: [], archives: [], wildcard: false };
  for (const src of ins.sources) {
    const before = out.sources.length;
    await collectOne(ins, ctx, tree, tmp, src, out);
    // --parents with a `/./` pivot keeps only the path after the pivot (BuildKit's COPY --parents).
    const pivot = ins.parents ? src.indexOf('/./') : -1;
    if (pivot >= 0) {
      const drop = posix.normalize('/' + src.slice(0, pivot)).replace(/^\/+/, '');
      for (const s of out.sources.slice(before)) {
        if (drop !== '' && s.relPath.startsWith(drop + '/')) s.relPath = s.relPath.slice(drop.length + 1);
      }
    }
  }
  return out;
}

async function collectOne(
  ins: CopyInstruction,
  ctx: StepContext,
  tree: SourceTree | undefined,
  tmp: string,
  src: string,
  out: CollectedSources,
): Promise<void> {
  if (src.startsWith('<<')) {
    out.sources.push(await heredocSource(ins, src, tmp, out.sources.length));
    return;
  }
  if (ins.kind === 'add' && tree === undefined && (isUrl(src) || isGit(src)))
    return remoteSource(ins, ctx, src, tmp, out);
  if (ins.kind === 'add' && ins.checksum !== undefined && !isUrl(src)) {
    throw new KilnError('dockerfile', 'BAD_CHECKSUM', 'ADD --checksum only applies to URL sources', {
      position: ins.at,
    });
  }
  if (tree === undefined) return contextSources(ins, ctx, src, out);
  if (/[*?[]/.test(posix.normalize('/' + src))) return treeWildcardSources(tree, src, out);
  out.sources.push(await treeSource(ins, tree, src));
}

/** `COPY <<EOF /dest`: the body becomes a 0644 file named after the heredoc. */
async function heredocSource(ins: CopyInstruction, src: string, tmp: string, n: number): Promise<CopySource> {
  const name = src.slice(2);
  const doc = ins.heredocs.find((h) => h.name === name);
  if (!doc)
    throw new KilnError('dockerfile', 'BAD_HEREDOC', `${ins.kind.toUpperCase()}: no heredoc named ${name}`, {
      position: ins.at,
    });
  const p = join(tmp, `heredoc-${n}`, name);
  await mkdir(posix.dirname(p), { recursive: true });
  await writeFile(p, doc.content, { mode: 0o644 });
  await chmod(p, 0o644);
  return { hostPath: p, sourceRoot: posix.dirname(p), relPath: name };
}

/** ADD <url> (a file, 0600 as Docker makes it) or ADD <git repo> (its tree, like a directory). */
async function remoteSource(
  ins: CopyInstruction,
  ctx: StepContext,
  src: string,
  tmp: string,
  out: CollectedSources,
): Promise<void> {
  if (isGit(src)) {
    const dir = await fetchGitSource(
      src,
      join(tmp, `git-${out.sources.length}`),
      ctx.opts,
      ins.keepGitDir,
      ctx.logger,
    );
    out.sources.push({ hostPath: dir, sourceRoot: dir, relPath: '.' });
    return;
  }
  const got = await fetchUrl(src, tmp, {
    ...(ins.checksum ? { checksum: ins.checksum } : {}),
    position: ins.at,
  });
  await chmod(got.path, 0o600);
  out.mtime = got.mtime;
  out.sources.push({ hostPath: got.path, sourceRoot: posix.dirname(got.path), relPath: got.name });
}

async function contextSources(
  ins: CopyInstruction,
  ctx: StepContext,
  src: string,
  out: CollectedSources,
): Promise<void> {
  const r = await ctx.context.resolve(src, ins.at);
  out.wildcard ||= r.wildcard;
  for (const s of r.sources) {
    const unpack =
      ins.kind === 'add' &&
      ins.unpack !== false &&
      (await lstat(s.hostPath)).isFile() &&
      (await archiveKind(s.hostPath)) !== null;
    (unpack ? out.archives : out.sources).push(s);
  }
}

/** A wildcard path in a stage or image, matched one component at a time. */
async function treeWildcardSources(tree: SourceTree, src: string, out: CollectedSources): Promise<void> {
  out.wildcard = true;
  let level = ['/'];
  for (const part of posix
    .normalize('/' + src)
    .split('/')
    .filter(Boolean)) {
    const re = /[*?[]/.test(part) ? componentRegExp(part) : null;
    const next: string[] = [];
    for (const base of level) {
      if (!re) {
        next.push(posix.join(base, part));
        continue;
      }
      const names = await readdir(await resolveInRoot(tree.root, base)).catch(() => [] as string[]);
      for (const n of names.sort()) if (re.test(n)) next.push(posix.join(base, n));
    }
    level = next;
  }
  for (const p of level) {
    const host = await resolveInRoot(tree.root, p, false);
    if (await exists(host)) out.sources.push({ hostPath: host, sourceRoot: tree.root, relPath: p.slice(1) });
  }
  // No match copies nothing, as from the context (BuildKit's AllowEmptyWildcard).
}

async function treeSource(ins: CopyInstruction, tree: SourceTree, src: string): Promise<CopySource> {
  const rel = posix.normalize('/' + src);
  const host = await resolveInRoot(tree.root, rel, false);
  if (!(await exists(host))) {
    throw new KilnError(
      'context',
      'COPY_SOURCE_MISSING',
      `${ins.kind.toUpperCase()} --from=${ins.from}: "${src}" does not exist in that stage or image`,
      {
        position: ins.at,
        hint: 'check the path inside the source stage (paths there are absolute)',
      },
    );
  }
  return { hostPath: host, sourceRoot: tree.root, relPath: rel === '/' ? '.' : rel.slice(1) };
}
