/**
 * The plain rung: no namespaces and no mount(2) (Docker's default seccomp profile), chroot only.
 * /dev nodes are made with mknod, bind mounts are emulated by copying (rw ones are copied back), tmpfs
 * by an empty directory, and everything is removed or put back afterwards. There is no /proc and no
 * network isolation in this rung.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import { resolveInRoot } from '../fs/rootpath.ts';
import { KilnError } from '../util/errors.ts';
import { PLAIN_CAPS } from './capabilities.ts';
import { execChain } from './exec-chain.ts';
import type { RunContext } from './run-context.ts';
import { exists } from './root-stubs.ts';
import type { ResolvedMount } from './root-stubs.ts';
import { TRACER_CAPS, prootCommand, procWritable } from './plain-proot.ts';
import { readOnlyProcWrapper } from './namespaced-script.ts';
import { prootFilterHex } from './proot-filter.ts';
import { findTool, runTool } from './tools.ts';
import { spawnAndWait } from './spawn-run.ts';
import type { RunResult } from './types.ts';

/** Device nodes made in the root's /dev: name, major, minor. */
const PLAIN_DEV_NODES: readonly [string, number, number][] = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

async function makeDevNodes(c: RunContext): Promise<void> {
  const dev = await resolveInRoot(c.root, '/dev');
  await c.stubs.ensure(c.root, dev, 'dir');
  for (const [name, major, minor] of PLAIN_DEV_NODES) {
    const p = posix.join(dev, name);
    if (await exists(p)) continue;
    const r = await runTool(c.tools.mknod, ['-m', '666', p, 'c', String(major), String(minor)]);
    if (r.code !== 0) {
      throw new KilnError('isolation', 'MKNOD_FAILED', `cannot create /dev/${name}: ${r.stderr.trim()}`, {
        hint: 'the plain rung needs CAP_MKNOD; run kiln as root in the container',
      });
    }
    c.stubs.record(p, false);
  }
}

/** /dev/shm as a private sticky directory (shm_open and POSIX semaphores only need a directory). */
async function makeShm(c: RunContext): Promise<string | undefined> {
  const shm = await resolveInRoot(c.root, '/dev/shm');
  if (await exists(shm)) return undefined;
  await c.stubs.ensure(c.root, shm, 'dir');
  await chmod(shm, 0o1777);
  return shm;
}

/**
 * PRoot's tracees use host paths below the root with their own ids: the kiln work dir and the build
 * dir (0700) become 0711 (enter, not list; their names carry random parts) so a RUN's non-root
 * processes (USER, apt's _apt) reach the root. Only directories of this user inside `top` change.
 */
async function letTraverse(root: string, top: string): Promise<string | undefined> {
  const euid = process.geteuid?.() ?? 0;
  let closed: string | undefined;
  for (let d = posix.dirname(root); d !== '/'; d = posix.dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) !== 0) continue;
    if (d.startsWith(top) && st.uid === euid) await chmod(d, (st.mode & 0o7777) | 0o011);
    else closed ??= d;
  }
  return closed;
}

/** The run init's command line in PRoot mode (plain-proot.ts), wrapped where /proc is writable. */
async function prootChain(c: RunContext): Promise<string[]> {
  const assets = await c.proot!();
  for (const p of ['/proc', '/dev/pts']) await c.stubs.ensure(c.root, await resolveInRoot(c.root, p), 'dir');
  const hostBinds = ['/proc', '/dev/pts'];
  if (await exists('/dev/ptmx')) {
    const ptmx = await resolveInRoot(c.root, '/dev/ptmx');
    if (!(await exists(ptmx))) await c.stubs.ensure(c.root, ptmx, 'file');
    hostBinds.push('/dev/ptmx');
  }
  const closed = await letTraverse(c.root, c.shareTop);
  if (closed && c.spec.uid !== 0) {
    c.opts.onWarning?.(
      `${closed} cannot be entered by other users, so this RUN's user ${c.spec.uid} cannot reach the root under PRoot; pass a --work-dir whose parent directories are enterable (e.g. under /tmp)`,
    );
  }
  const cmd = prootCommand({
    assets,
    root: c.root,
    spec: c.spec,
    cwd: '/' + posix.relative(c.root, c.hostCwd),
    setgroupsDenied: c.setgroupsDenied,
    syscalls: c.tools.syscalls,
    hostBinds,
  });
  const chain = execChain(c.tools.perl, {
    spec: { argv: cmd.argv, env: cmd.env, uid: 0, gid: 0, additionalGids: [], insecure: c.spec.insecure },
    root: c.root,
    hostCwd: c.root,
    mode: 'proot',
    filter: prootFilterHex(),
    caps: [...PLAIN_CAPS, ...TRACER_CAPS],
    lastCap: c.tools.lastCap,
    syscalls: c.tools.syscalls,
    setgroupsDenied: c.setgroupsDenied,
  });
  if (!procWritable()) return chain;
  return [...readOnlyProcWrapper(findTool('unshare')!, findTool('mount')!, c.tools.sh), ...chain];
}

export async function runPlain(c: RunContext): Promise<RunResult> {
  if (c.spec.network === 'none') {
    c.opts.onWarning?.('network=none is not possible in the plain isolation rung; the host network is used');
  }
  await makeDevNodes(c);
  // Its content goes with the step, as a tmpfs's would.
  const shm = await makeShm(c);
  // Emulated mounts: whatever was at the target is moved aside and put back afterwards (a rename:
  // the same inode, so its content, mode, owner and times are the image's again), and the times of
  // the directory holding it are put back too, so no trace is left for the snapshot to see.
  const placed: { m: ResolvedMount; aside?: string }[] = [];
  const parentTimes = new Map<string, { atime: number; mtime: number }>();
  const cp = async (src: string, dst: string, dir: boolean): Promise<void> => {
    const r = await runTool(c.tools.cp, dir ? ['-a', '--', `${src}/.`, dst] : ['-a', '--', src, dst]);
    if (r.code !== 0) {
      throw new KilnError('isolation', 'MOUNT_COPY', `cannot copy ${src} to ${dst}: ${r.stderr.trim()}`);
    }
  };
  try {
    for (const m of [...c.etcMounts, ...c.mounts]) {
      const parent = posix.dirname(m.host);
      if (!parentTimes.has(parent)) {
        const st = await lstat(parent, { bigint: true }).catch(() => undefined);
        if (st?.isDirectory()) {
          parentTimes.set(parent, { atime: Number(st.atimeNs) / 1e9, mtime: Number(st.mtimeNs) / 1e9 });
        }
      }
      let aside: string | undefined;
      if (await exists(m.host)) {
        aside = `${m.host}.kiln-aside-${randomBytes(4).toString('hex')}`;
        await rename(m.host, aside);
      }
      placed.push({ m, aside });
      const dir = m.spec.type === 'tmpfs' || m.sourceIsDir;
      await c.stubs.ensure(c.root, posix.dirname(m.host), 'dir');
      if (dir) await mkdir(m.host, { mode: 0o755 });
      if (m.spec.type === 'bind') await cp(m.spec.source, m.host, dir);
    }
    const chain = c.proot
      ? await prootChain(c)
      : execChain(c.tools.perl, {
          spec: c.spec,
          root: c.root,
          hostCwd: c.hostCwd,
          mode: 'chroot',
          caps: PLAIN_CAPS,
          lastCap: c.tools.lastCap,
          syscalls: c.tools.syscalls,
          setgroupsDenied: c.setgroupsDenied,
        });
    // Its own session and process group; the init is a child subreaper, so every orphan of the
    // step is its child and is killed when the step ends.
    return await spawnAndWait(chain[0]!, chain.slice(1), c.spec, c.opts, true);
  } finally {
    for (const { m, aside } of placed.reverse()) {
      if (
        m.spec.type === 'bind' &&
        !m.spec.readonly &&
        m.spec.source !== m.host &&
        !c.etcMounts.includes(m)
      ) {
        // Copy a read-write bind back so caches persist.
        if (m.sourceIsDir) {
          for (const e of await readdir(m.spec.source)) {
            await rm(posix.join(m.spec.source, e), { recursive: true, force: true });
          }
          await cp(m.host, m.spec.source, true);
        } else if (await exists(m.host)) {
          await cp(m.host, m.spec.source, false);
        }
      }
      await rm(m.host, { recursive: true, force: true });
      if (aside) await rename(aside, m.host);
    }
    for (const [dir, t] of parentTimes) {
      await utimes(dir, t.atime, t.mtime).catch((e: NodeJS.ErrnoException) => {
        // The step removed the directory: nothing to put back.
        if (e.code !== 'ENOENT') throw e;
      });
    }
    if (shm) await rm(shm, { recursive: true, force: true });
  }
}
