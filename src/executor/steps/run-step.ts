/**
 * RUN: shell or exec form, heredocs (a lone `<<EOF` is the script; otherwise the heredoc text is
 * handed to the shell as written), --mount (secrets, caches, binds, tmpfs), --network, and the
 * build args in scope in the environment. Secrets are redacted from output and never reach history.
 */
import { createHash } from 'node:crypto';
import type { RunInstruction } from '../../dockerfile/instructions.ts';
import { parseRunMount } from '../../dockerfile/mounts.ts';
import { envDigest } from '../../cache/key.ts';
import { sourcesDigest } from '../../cache/sources-digest.ts';
import { fromDigest, type KeyHelpers } from '../step-cache.ts';
import type { KeyInputs, StepModule } from './module.ts';
import { expandInScope } from './expand.ts';
import { currentShell } from '../config-ops.ts';
import { runHistory } from '../history.ts';
import { resolveUser } from '../passwd.ts';
import { resolveRunMounts } from '../run-mounts.ts';
import { KilnError } from '../../util/errors.ts';
import type { StepContext } from './context.ts';

/** The argv a RUN executes, heredocs folded in the way BuildKit does. */
export function runArgv(ins: RunInstruction, shell: string[]): string[] {
  if (ins.command.form === 'exec') return ins.command.argv;
  const script = ins.command.script;
  if (ins.heredocs.length === 0) return [...shell, script];
  const only = ins.heredocs.length === 1 ? ins.heredocs[0]! : undefined;
  if (only && /^\s*\d*<<-?\s*["']?[^"'\s]+["']?\s*$/.test(script)) {
    // `RUN <<EOF` alone: the body is the script. A shebang picks its own interpreter.
    if (only.content.startsWith('#!')) {
      const interp = only.content.slice(2, only.content.indexOf('\n')).trim().split(/\s+/);
      return [...interp, '-c', only.content.slice(only.content.indexOf('\n') + 1)].filter((s) => s !== '');
    }
    return [...shell, only.content];
  }
  // `RUN cat <<EOF > f` and friends: give the shell the heredocs exactly as written.
  const bodies = ins.heredocs.map((h) => `${h.content}${h.name}\n`).join('');
  return [...shell, `${script}\n${bodies}`];
}

/** Linux's MAX_ARG_STRLEN: one argument (the shell script) longer than this cannot be exec'ed. */
const MAX_ARG = 128 * 1024;

/** What the kernel would refuse at exec, said at the Dockerfile line instead of "cannot start". */
function checkArgv(argv: string[], ins: RunInstruction): void {
  for (const a of argv) {
    if (a.includes('\0')) {
      throw new KilnError('dockerfile', 'BAD_CHARACTER', 'RUN command contains a NUL byte', {
        position: ins.at,
        hint: 'a command line cannot carry NUL bytes; remove it (is the Dockerfile a binary file?)',
      });
    }
    if (Buffer.byteLength(a) >= MAX_ARG) {
      throw new KilnError(
        'dockerfile',
        'LINE_TOO_LONG',
        `RUN command is ${Buffer.byteLength(a)} bytes; the kernel takes at most ${MAX_ARG - 1} in one argument`,
        {
          position: ins.at,
          hint: 'put the script in a file (COPY it, or a RUN heredoc to a file) and run that',
        },
      );
    }
  }
}

async function runStep(ins: RunInstruction, ctx: StepContext): Promise<void> {
  const b = ctx.builder;
  const argv = runArgv(ins, currentShell(b.config));
  checkArgv(argv, ins);
  // BuildKit's opt-in to every capability for this step (its entitlement is the Dockerfile flag here).
  const insecure = ins.security === 'insecure';
  if (insecure) {
    ctx.logger.warn(
      `${ins.at.file}:${ins.at.line}: RUN --security=insecure runs with every capability (it can reach the host in the chroot and plain rungs)`,
    );
  }
  const reqs = ins.mounts.map((m, i) => parseRunMount(m, ins.at, i));
  const resolved = await resolveRunMounts(reqs, {
    secrets: ctx.opts.secrets,
    sourceRoot: async (from) => (await ctx.sourceTree(from)).root,
    contextSkip: ctx.context.skip,
    cacheDir: ctx.cacheDir,
    tmpDir: ctx.tmpDir,
    workdir: b.config.config?.WorkingDir || '/',
    position: ins.at,
    processEnv: process.env,
  });
  for (const s of resolved.secretValues) ctx.logger.addSecret(s);
  try {
    const args = ctx.scope.runArgs();
    const net = (ins.network ?? ctx.opts.network) as 'default' | 'none' | 'host';
    // runc (under Docker and BuildKit) sets HOME from the user's /etc/passwd entry ("/" without one)
    // when the image does not set it.
    const home: string[] = [];
    if (!(b.config.config?.Env ?? []).some((e) => e.startsWith('HOME='))) {
      const user = await resolveUser(b.rootfs, b.config.config?.User || 'root', ins.at).catch(
        () => undefined,
      );
      home.push(`HOME=${user?.home || '/'}`);
    }
    // One secret filter for the stream, holding back what may be the start of a secret.
    const out = ctx.logger.redactingWriter((c) => ctx.onOutput?.(c));
    await b
      .run({
        argv,
        extraEnv: [...home, ...args.map(([k, v]) => `${k}=${v}`)],
        overrideEnv: resolved.env,
        mounts: resolved.mounts,
        network: net,
        insecure,
        history: runHistory(argv, args),
        position: ins.at,
        onOutput: (chunk) => out.write(chunk),
      })
      .finally(() => out.end());
  } finally {
    await resolved.cleanup();
  }
}

/**
 * What a RUN observes: the build args in scope and the whole config (so a build arg change misses
 * from its first use, not from its declaration), and the files of its bind mounts.
 */
async function runKeyInputs(ins: RunInstruction, ctx: StepContext, h: KeyHelpers): Promise<KeyInputs> {
  const cfg = ctx.builder.config.config ?? {};
  const env = envDigest(ctx.scope.runArgs(), {
    env: (cfg.Env ?? []).join('\0'),
    user: cfg.User ?? '',
    workdir: cfg.WorkingDir ?? '',
    shell: (cfg.Shell ?? []).join('\0'),
    platform: h.platform,
    network: ins.network ?? ctx.opts.network,
  });
  const src = createHash('sha256');
  for (const [i, m] of ins.mounts.entries()) {
    const req = parseRunMount(m, ins.at, i);
    if (req.type !== 'bind') continue;
    if (req.from !== undefined)
      src.update(`bind:${req.target}\0${await fromDigest(req.from, h)}\0${req.source}\0`);
    else {
      const r = await ctx.context.resolve(req.source === '/' ? '.' : req.source, ins.at);
      src.update(`bind:${req.target}\0${await sourcesDigest(r.sources, h.index, ctx.context.skip)}\0`);
    }
  }
  return { env, sources: src.digest('hex') };
}

export const runModule: StepModule<RunInstruction> = {
  // Only --mount values are expanded; the command is the shell's to expand.
  expand: expandInScope,
  touchesFilesystem: true,
  cache: 'layer',
  cacheAllowed: (opts) => opts.cache.runLayers,
  keyInputs: runKeyInputs,
  run: runStep,
};
