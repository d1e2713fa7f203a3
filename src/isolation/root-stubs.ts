/**
 * Files and directories a run needs in the root (mount targets, /proc, /dev, /etc/hosts…) that the
 * image does not have: created before the run and removed after it, as BuildKit does, so that they
 * never end up in a layer.
 */
import { lstat, mkdir, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../util/errors.ts';
import type { MountSpec } from './types.ts';

/** A RunSpec mount (or a generated /etc file) with its target resolved to a host path in the root. */
export interface ResolvedMount {
  spec: MountSpec;
  host: string;
  sourceIsDir: boolean;
}

/** Files and directories created in the root for this run only, in creation order. */
export class Stubs {
  readonly created: { path: string; dir: boolean }[] = [];

  /** Makes `host` (and missing parents below `root`) exist; records what it created. */
  async ensure(root: string, host: string, kind: 'dir' | 'file'): Promise<void> {
    try {
      await this.create(root, host, kind);
    } catch (e) {
      const where = '/' + posix.relative(root, host);
      const why = e instanceof Error && 'code' in e ? String(e.code) : String(e);
      throw new KilnError(
        'isolation',
        'MOUNT_TARGET',
        `cannot create mount target ${where} in the root (${why})`,
        {
          cause: e,
          hint: 'a file in the image is in the way of the mount target',
        },
      );
    }
  }

  private async create(root: string, host: string, kind: 'dir' | 'file'): Promise<void> {
    if (await exists(host)) return;
    const rel = posix.relative(root, host).split('/').filter(Boolean);
    let cur = root;
    for (let i = 0; i < rel.length; i++) {
      cur = posix.join(cur, rel[i]!);
      if (await exists(cur)) continue;
      const last = i === rel.length - 1;
      if (last && kind === 'file') {
        await writeFile(cur, '', { mode: 0o644 });
        this.created.push({ path: cur, dir: false });
      } else {
        await mkdir(cur, { mode: 0o755 });
        this.created.push({ path: cur, dir: true });
      }
    }
  }

  record(path: string, dir: boolean): void {
    this.created.push({ path, dir });
  }

  /** Removes the stubs, newest first; a stub the command filled in is left alone. */
  async remove(): Promise<void> {
    for (const s of [...this.created].reverse()) {
      try {
        const st = await lstat(s.path);
        if (s.dir) {
          if (st.isDirectory()) await rmdir(s.path);
        } else if (!st.isDirectory() && (!st.isFile() || st.size === 0)) {
          await unlink(s.path);
        }
      } catch {
        // gone already, or not empty: keep
      }
    }
    this.created.length = 0;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

export async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}
