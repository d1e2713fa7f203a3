/**
 * COPY and ADD: sources from the context (wildcards, .dockerignore), another stage or an image
 * (--from), heredocs, and for ADD remote URLs (--checksum) and local tar archives, which are
 * unpacked. --chown/--chmod/--parents/--exclude/--link as Docker defines them.
 */
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import type { CopyInstruction } from '../../dockerfile/instructions.ts';
import { parseChmod } from '../chmod.ts';
import { copyIntoRoot } from '../copy-files.ts';
import type { CopySource } from '../../context/sources.ts';
import { fetchUrl } from '../fetch-url.ts';
import { layerHistory } from '../history.ts';
import { resolveChown } from '../passwd.ts';
import { resolveInRoot } from '../../fs/rootpath.ts';
import { extractLayer } from '../../fs/extract.ts';
import { componentRegExp } from '../../context/sources.ts';
import { IgnoreMatcher, parseDockerignore } from '../../context/dockerignore.ts';
import { KilnError } from '../../util/errors.ts';
import { runCommand } from '../../util/command.ts';
import { fetchGitSource } from '../../context/fetch.ts';
import type { StepContext } from './context.ts';
import { spawn } from 'node:child_process';

const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);
const isGit = (s: string): boolean => /^git@|^git:\/\/|\.git(#.*)?$/.test(s);

/** Archive kind from magic bytes: only these are unpacked by ADD. */
async function archiveKind(path: string): Promise<'tar' | 'gzip' | 'bzip2' | 'xz' | 'zstd' | null> {
  const kind = await compressionOf(path);
  if (kind === null) return null;
  // Docker extracts only tar archives: a compressed file that is not a tar inside (note.txt.gz) is
  // copied as it is, and so is a file that merely starts with a compression magic.
  const head = kind === 'tar' ? await readHead(path) : await decompressedHead(path, kind);
  return head !== null && isTarHeader(head) ? kind : null;
}

async function readHead(path: string): Promise<Buffer | null> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    return bytesRead === 512 ? buf : null;
  } finally {
    await fh.close();
  }
}

/** The first 512 decompressed bytes, or null when the stream is shorter or not decodable. */
function decompressedHead(path: string, kind: 'gzip' | 'bzip2' | 'xz' | 'zstd'): Promise<Buffer | null> {
  return new Promise((resolvePromise) => {
    const child = spawn(kind === 'bzip2' ? 'bzip2' : kind, ['-dc', path], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (v: Buffer | null): void => {
      if (done) return;
      done = true;
      child.kill();
      resolvePromise(v);
    };
    child.stdout.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      if (size >= 512) finish(Buffer.concat(chunks).subarray(0, 512));
    });
    child.on('error', () => finish(null));
    child.on('close', () => finish(size >= 512 ? Buffer.concat(chunks).subarray(0, 512) : null));
  });
}

/** A tar header block: its checksum field matches the sum of its bytes (ustar and v7 alike). */
function isTarHeader(h: Buffer): boolean {
  const field = h
    .subarray(148, 156)
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === parseInt(field, 8);
}

async function compressionOf(path: string): Promise<'tar' | 'gzip' | 'bzip2' | 'xz' | 'zstd' | null> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(262);
    const { bytesRead } = await fh.read(buf, 0, 262, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'gzip';
    if (bytesRead >= 3 && buf.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    if (bytesRead >= 6 && buf.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
      return 'xz';
    if (bytesRead >= 4 && buf.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'tar';
  } finally {
    await fh.close();
  }
}

async function decompressWith(tool: string, path: string, out: string): Promise<void> {
  const r = await runCommand('sh', ['-c', `${tool} -dc < "$1" > "$2"`, 'sh', path, out], {
    stdout: 'ignore',
  });
  if (r.code !== 0) throw new Error(`${tool}: ${r.stderr.trim()}`);
}

export async function copyStep(ins: CopyInstruction, ctx: StepContext): Promise<void> {
  const b = ctx.builder;
  const at = ins.at;
  const upper = ins.kind.toUpperCase();
  const tree = ins.from !== undefined ? await ctx.sourceTree(ins.from) : undefined;
  const tmp = await mkdtemp(join(ctx.tmpDir, 'copy-'));
  try {
    const sources: CopySource[] = [];
    const archives: CopySource[] = [];
    let wildcard = false;
    let mtime: Date | undefined;
    for (const src of ins.sources) {
      const before = sources.length;
      await collect(src);
      // --parents with a `/./` pivot keeps only the path after the pivot (BuildKit's COPY --parents).
      const pivot = ins.parents ? src.indexOf('/./') : -1;
      if (pivot >= 0) {
        const drop = posix.normalize('/' + src.slice(0, pivot)).replace(/^\/+/, '');
        for (const s of sources.slice(before)) {
          if (drop !== '' && s.relPath.startsWith(drop + '/')) s.relPath = s.relPath.slice(drop.length + 1);
        }
      }
    }
    async function collect(src: string): Promise<void> {
      if (src.startsWith('<<')) {
        const name = src.slice(2);
        const doc = ins.heredocs.find((h) => h.name === name);
        if (!doc)
          throw new KilnError('dockerfile', 'BAD_HEREDOC', `${upper}: no heredoc named ${name}`, {
            position: at,
          });
        const p = join(tmp, `heredoc-${sources.length}`, name);
        await mkdir(posix.dirname(p), { recursive: true });
        await writeFile(p, doc.content, { mode: 0o644 });
        await chmod(p, 0o644);
        sources.push({ hostPath: p, sourceRoot: posix.dirname(p), relPath: name });
        return;
      }
      if (ins.kind === 'add' && tree === undefined && (isUrl(src) || isGit(src))) {
        if (isGit(src)) {
          // The repository's tree is copied like a directory source (its contents into dest).
          const dir = await fetchGitSource(
            src,
            join(tmp, `git-${sources.length}`),
            ctx.opts,
            ins.keepGitDir,
            ctx.logger,
          );
          sources.push({ hostPath: dir, sourceRoot: dir, relPath: '.' });
          return;
        }
        const got = await fetchUrl(src, tmp, {
          ...(ins.checksum ? { checksum: ins.checksum } : {}),
          position: at,
        });
        await chmod(got.path, 0o600);
        mtime = got.mtime;
        sources.push({ hostPath: got.path, sourceRoot: posix.dirname(got.path), relPath: got.name });
        return;
      }
      if (ins.kind === 'add' && ins.checksum !== undefined && !isUrl(src)) {
        throw new KilnError('dockerfile', 'BAD_CHECKSUM', 'ADD --checksum only applies to URL sources', {
          position: at,
        });
      }
      if (tree === undefined) {
        const r = await ctx.context.resolve(src, at);
        wildcard ||= r.wildcard;
        for (const s of r.sources) {
          const unpack =
            ins.kind === 'add' &&
            ins.unpack !== false &&
            (await lstat(s.hostPath)).isFile() &&
            (await archiveKind(s.hostPath)) !== null;
          (unpack ? archives : sources).push(s);
        }
      } else {
        const rel = posix.normalize('/' + src);
        if (/[*?[]/.test(rel)) {
          wildcard = true;
          const parts = rel.split('/').filter(Boolean);
          let level = ['/'];
          for (const part of parts) {
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
            if (
              await lstat(host).then(
                () => true,
                () => false,
              )
            )
              sources.push({ hostPath: host, sourceRoot: tree.root, relPath: p.slice(1) });
          }
          // No match copies nothing, as from the context (BuildKit's AllowEmptyWildcard).
        } else {
          const host = await resolveInRoot(tree.root, rel, false);
          if (
            !(await lstat(host).then(
              () => true,
              () => false,
            ))
          ) {
            throw new KilnError(
              'context',
              'COPY_SOURCE_MISSING',
              `${upper} --from=${ins.from}: "${src}" does not exist in that stage or image`,
              {
                position: at,
                hint: 'check the path inside the source stage (paths there are absolute)',
              },
            );
          }
          sources.push({ hostPath: host, sourceRoot: tree.root, relPath: rel === '/' ? '.' : rel.slice(1) });
        }
      }
    }
    const chown = ins.chown !== undefined ? await resolveChown(b.rootfs, ins.chown, at) : undefined;
    const chmodSpec = ins.chmod !== undefined ? parseChmod(ins.chmod, at) : undefined;
    const exclude = ins.exclude.length
      ? new IgnoreMatcher(parseDockerignore(ins.exclude.join('\n'), `${upper} --exclude`))
      : undefined;
    const contextSkip = tree === undefined ? ctx.context.skip : undefined;
    const skip = (hostPath: string, withinSource: string): boolean => {
      if (contextSkip?.(hostPath)) return true;
      if (!exclude) return false;
      // Inside a copied directory, --exclude matches paths relative to that source (BuildKit's copier).
      if (withinSource !== '') return exclude.matches(withinSource);
      const base = tree?.root ?? ctx.context.dir;
      const rel = relative(base, hostPath).split(sep).join('/');
      return exclude.matches(rel);
    };
    const workdir = b.config.config?.WorkingDir || '/';
    const text = `${upper} ${ins.from !== undefined ? `--from=${ins.from} ` : ''}${[...ins.sources, ins.dest].join(' ')}`;
    const copySources = async (root: string): Promise<string[]> =>
      sources.length === 0
        ? []
        : (
            await copyIntoRoot(root, sources, {
              dest: ins.dest,
              workdir,
              ...(chown ? { chown } : {}),
              ...(chmodSpec ? { chmod: chmodSpec } : {}),
              preserveOwnership: tree?.preserveOwnership ?? false,
              parents: ins.parents,
              ...(mtime ? { mtime } : {}),
              multiple: wildcard || sources.length + archives.length > 1,
              position: at,
              skip,
            })
          ).written;
    if (archives.length === 0) {
      // Every path the copy writes is known: straight into the rootfs, no snapshot needed.
      await b.changeKnown(layerHistory(text), copySources);
    } else {
      await b.change(layerHistory(text), async (root) => {
        await copySources(root);
        for (const a of archives) {
          const destAbs = posix.isAbsolute(ins.dest) ? ins.dest : posix.join(workdir, ins.dest);
          const destHost = await resolveInRoot(root, destAbs);
          await mkdir(destHost, { recursive: true });
          const kind = await archiveKind(a.hostPath);
          let path = a.hostPath;
          if (kind === 'bzip2' || kind === 'xz') {
            path = join(tmp, `unpacked-${archives.indexOf(a)}.tar`);
            await decompressWith(kind === 'bzip2' ? 'bzip2' : 'xz', a.hostPath, path);
          }
          await extractLayer(createReadStream(path), destHost);
        }
      });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
