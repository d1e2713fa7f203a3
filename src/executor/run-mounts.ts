/**
 * RUN --mount: turns BuildKit mount requests into sandbox mounts on the host. Secrets are copied into
 * a private temp dir (never into the rootfs, never into a layer) and bound read-only; cache mounts
 * live in the cache dir under their id and persist across builds; a read-write bind gets a throwaway
 * copy so the source is never changed, as BuildKit does.
 */
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join, posix } from 'node:path';
import type { MountSpec } from '../isolation/types.ts';
import type { SecretSpec } from '../options.ts';
import { KilnError, type SourcePosition } from '../util/errors.ts';
import { resolveInRoot } from '../fs/rootpath.ts';

export type { RunMountRequest } from '../dockerfile/mounts.ts';
import { cacheMountKey, type RunMountRequest } from '../dockerfile/mounts.ts';

export interface MountResolution {
  mounts: MountSpec[];
  /** `KEY=value` for secrets exposed as env; never logged or recorded. */
  env: string[];
  /** Values to redact from output. */
  secretValues: string[];
  /** Removes temp copies (secrets, rw binds). Always call it, even when the RUN failed. */
  cleanup(): Promise<void>;
}

export interface MountContext {
  secrets: SecretSpec[];
  /** Host root for a `from` value (stage rootfs, image rootfs), or the build context when undefined. */
  sourceRoot(from: string | undefined): Promise<string>;
  /** What .dockerignore hides in the build context (a host path in it): a context bind does not see it. */
  contextSkip?: (hostPath: string) => boolean;
  cacheDir: string;
  tmpDir: string;
  workdir: string;
  position: SourcePosition;
  processEnv: NodeJS.ProcessEnv;
}

export async function resolveRunMounts(reqs: RunMountRequest[], ctx: MountContext): Promise<MountResolution> {
  const mounts: MountSpec[] = [];
  const env: string[] = [];
  const secretValues: string[] = [];
  const temps: string[] = [];
  const cleanup = async () => {
    for (const t of temps) await rm(t, { recursive: true, force: true });
  };
  try {
    for (const r of reqs) {
      switch (r.type) {
        case 'secret': {
          const value = await readSecret(r.id, ctx);
          if (value === undefined) {
            if (r.required) {
              throw new KilnError(
                'run',
                'SECRET_MISSING',
                `secret "${r.id}" is required by RUN --mount but was not given`,
                {
                  position: ctx.position,
                  hint: `pass it with --secret id=${r.id},src=<file> or --secret id=${r.id},env=<VAR>`,
                },
              );
            }
            continue;
          }
          secretValues.push(value.toString('utf8').trim());
          if (r.env) env.push(`${r.env}=${value.toString('utf8')}`);
          if (r.env && r.target === undefined) continue;
          const dir = await mkdtemp(join(ctx.tmpDir, 'secret-'));
          temps.push(dir);
          await chmod(dir, 0o700);
          const file = join(dir, 'value');
          await writeFile(file, value, { mode: r.mode });
          await chown(file, r.uid, r.gid);
          await chmod(file, r.mode);
          mounts.push({
            type: 'bind',
            source: file,
            target: r.target ?? `/run/secrets/${r.id}`,
            readonly: true,
          });
          break;
        }
        case 'cache': {
          const target = absTarget(r.target, ctx.workdir);
          // BuildKit's cache identity (id or cleaned target, plus an explicit owner or seed).
          const id = cacheMountKey(r);
          const dir = join(
            ctx.cacheDir,
            'run-cache',
            createHash('sha256').update(id).digest('hex').slice(0, 32),
          );
          const fresh = await mkdir(dir, { recursive: true });
          if (fresh !== undefined) {
            await chown(dir, r.uid, r.gid);
            await chmod(dir, r.mode);
            if (r.from !== undefined) {
              const root = await ctx.sourceRoot(r.from);
              await cp(await resolveInRoot(root, r.source ?? '/'), dir, {
                recursive: true,
                preserveTimestamps: true,
              });
            }
          }
          mounts.push({ type: 'bind', source: dir, target, readonly: r.readonly });
          break;
        }
        case 'bind':
          mounts.push(await bindMount(r, ctx, temps));
          break;
        case 'tmpfs':
          mounts.push({ type: 'tmpfs', target: absTarget(r.target, ctx.workdir), size: r.size });
          break;
        case 'ssh':
          if (r.required) {
            throw new KilnError(
              'run',
              'SSH_UNSUPPORTED',
              'RUN --mount=type=ssh needs an SSH agent, which kiln does not forward yet',
              {
                position: ctx.position,
                hint: 'use a secret mount with a deploy key, or drop required=true to run without it',
              },
            );
          }
          break;
      }
    }
  } catch (e) {
    await cleanup();
    throw e;
  }
  return { mounts, env, secretValues, cleanup };
}

/** A bind mount: the source as COPY would see it; a throwaway copy when writable or filtered. */
async function bindMount(
  r: Extract<RunMountRequest, { type: 'bind' }>,
  ctx: MountContext,
  temps: string[],
): Promise<MountSpec> {
  const root = await ctx.sourceRoot(r.from);
  const src = await resolveInRoot(root, posix.join('/', r.source));
  let source = src;
  // The context as COPY sees it, as BuildKit does: what .dockerignore hides is not there.
  const skip = r.from === undefined ? ctx.contextSkip : undefined;
  if (!(await lstat(src).catch(() => null)) || skip?.(src)) {
    const where = r.from === undefined ? 'the build context' : r.from;
    throw new KilnError(
      'context',
      'MOUNT_SOURCE_MISSING',
      `RUN --mount=type=bind: source ${r.source || '/'} is not in ${where}${skip?.(src) ? ' (.dockerignore excludes it)' : ''}`,
      {
        position: ctx.position,
        hint: 'fix source= (it is relative to the context or the from= stage)',
      },
    );
  }
  if (r.readwrite || skip) {
    const dir = await mkdtemp(join(ctx.tmpDir, 'bind-'));
    temps.push(dir);
    source = join(dir, 'copy');
    await cp(src, source, {
      recursive: true,
      preserveTimestamps: true,
      verbatimSymlinks: true,
      ...(skip ? { filter: (p: string) => !skip(p) } : {}),
    });
  }
  return { type: 'bind', source, target: absTarget(r.target, ctx.workdir), readonly: !r.readwrite };
}

function absTarget(target: string, workdir: string): string {
  return posix.isAbsolute(target) ? posix.normalize(target) : posix.join(workdir || '/', target);
}

async function readSecret(id: string, ctx: MountContext): Promise<Buffer | undefined> {
  const spec = ctx.secrets.find((s) => s.id === id);
  if (!spec) return undefined;
  if (spec.src !== undefined) {
    try {
      return await readFile(spec.src);
    } catch (e) {
      throw new KilnError('run', 'SECRET_UNREADABLE', `secret "${id}": cannot read ${spec.src}`, {
        position: ctx.position,
        cause: e,
        hint: 'check the src= path given to --secret',
      });
    }
  }
  const v = ctx.processEnv[spec.env ?? id];
  return v === undefined ? undefined : Buffer.from(v);
}
