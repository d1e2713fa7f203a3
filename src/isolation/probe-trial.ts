/**
 * The probe's trial RUN: what a build's first RUN does, on a throwaway root. The real sandbox of the
 * rung (same helper tools, namespaces, /proc, /dev, /etc mounts) runs a command that does not exist,
 * inside a real snapshot of the engine the build would use (overlay: mount, copy-up dir, getfattr,
 * fold; walk: index and compare). Getting "command not found" (127) from inside the root proves
 * everything up to exec worked; a set-up failure comes back as the sandbox's own error. So a rung or
 * engine the probe reports as working is one the build can use.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { createSnapshotter } from '../fs/snapshotter.ts';
import type { SnapshotEngine } from '../fs/types.ts';
import { createSandbox } from './sandbox.ts';
import type { PlainProc } from './plain-proot.ts';
import type { Rung } from './types.ts';

/** Exit status of a command that does not exist (nsenter/env cannot exec it). */
const NOT_FOUND = 127;

function why(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? String(e);
}

/** Undefined when a RUN works in `rung` with `engine` here, else the one-line reason it does not. */
export async function trialRun(
  rung: Rung,
  engine: SnapshotEngine,
  dir: string,
  plainProc?: PlainProc,
  keepUtsName = false,
): Promise<string | undefined> {
  const base = await mkdtemp(posix.join(dir, `trial-${rung}-${engine}-`));
  const rootfs = posix.join(base, 'rootfs');
  await mkdir(posix.join(rootfs, 'etc'), { recursive: true });
  await writeFile(posix.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  let step;
  try {
    const sandbox = createSandbox(rung, {
      workDir: posix.join(base, 'sandbox'),
      ...(plainProc ? { plainProc } : {}),
      ...(keepUtsName ? { keepUtsName } : {}),
    });
    step = await createSnapshotter(engine, rootfs, posix.join(base, 'scratch')).begin({ exclude: [] });
    const r = await sandbox.run({
      root: step.runRoot,
      argv: ['/kiln-probe-none'],
      env: ['PATH=/usr/bin:/bin'],
      cwd: '/',
      uid: 0,
      gid: 0,
      additionalGids: [],
      mounts: [],
      network: 'default',
      hostname: 'kiln-probe',
      timeoutMs: 15_000,
      onStdout: () => undefined,
      onStderr: () => undefined,
    });
    if (r.exitCode !== NOT_FOUND) {
      return `a trial RUN ended with exit code ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}: ${r.tail.at(-1) ?? ''}`;
    }
    const s = step;
    step = undefined;
    await s.finish();
    return undefined;
  } catch (e) {
    return `a trial RUN failed: ${why(e)}`;
  } finally {
    await step?.abort().catch(() => undefined);
  }
}
