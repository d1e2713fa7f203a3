/** Runs one RUN in the namespaced rungs (rootless, chroot): prepares the root, then namespaced-script.ts. */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { resolveInRoot } from '../fs/rootpath.ts';
import { DOCKER_DEFAULT_CAPS } from './capabilities.ts';
import { execChain } from './exec-chain.ts';
import { DEV_NODES, namespacedInvocation } from './namespaced-script.ts';
import type { RunContext } from './run-context.ts';
import { spawnAndWait } from './spawn-run.ts';
import type { RunResult } from './types.ts';

/** The minimal /dev: files as bind targets for DEV_NODES, pts, shm and the usual symlinks. */
async function prepareDevDir(devDir: string): Promise<void> {
  await mkdir(devDir, { mode: 0o755 });
  for (const n of DEV_NODES) await writeFile(posix.join(devDir, n), '', { mode: 0o666 });
  for (const d of ['pts', 'shm']) await mkdir(posix.join(devDir, d), { mode: 0o755 });
  for (const [name, target] of [
    ['fd', '/proc/self/fd'],
    ['stdin', '/proc/self/fd/0'],
    ['stdout', '/proc/self/fd/1'],
    ['stderr', '/proc/self/fd/2'],
    ['core', '/proc/kcore'],
    ['ptmx', 'pts/ptmx'],
  ] as const) {
    await symlink(target, posix.join(devDir, name));
  }
}

export async function runNamespaced(c: RunContext): Promise<RunResult> {
  const proc = await resolveInRoot(c.root, '/proc');
  const sys = await resolveInRoot(c.root, '/sys');
  const dev = await resolveInRoot(c.root, '/dev');
  for (const d of [proc, sys, dev]) await c.stubs.ensure(c.root, d, 'dir');
  const all = [...c.etcMounts, ...c.mounts];
  for (const m of all) await c.stubs.ensure(c.root, m.host, m.sourceIsDir ? 'dir' : 'file');
  const devDir = posix.join(c.tmp, 'dev');
  await prepareDevDir(devDir);
  const exec = execChain(c.tools.perl, {
    spec: c.spec,
    root: c.root,
    hostCwd: c.hostCwd,
    mode: 'pivot',
    caps: DOCKER_DEFAULT_CAPS,
    lastCap: c.tools.lastCap,
    syscalls: c.tools.syscalls,
    setgroupsDenied: c.setgroupsDenied,
  });
  const inv = namespacedInvocation(c.tools, {
    network: c.spec.network,
    root: c.root,
    hostname: c.hostname,
    setHostname: !c.opts.keepUtsName,
    proc,
    sys,
    dev,
    devDir,
    mounts: all,
    exec,
  });
  return await spawnAndWait(inv.command, inv.args, c.spec, c.opts, false);
}
