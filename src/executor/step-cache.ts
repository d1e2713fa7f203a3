/**
 * Cache keys for the steps that make layers (RUN, COPY, ADD, WORKDIR): the state before the step,
 * the instruction after expansion, what the step can see of the environment, and the content of the
 * files it reads. Secrets enter by id only (their ids are in the instruction text); an ADD of a URL
 * without --checksum cannot be keyed before downloading it and is never cached.
 */
import { createHash } from 'node:crypto';
import type { Instruction } from '../dockerfile/instructions.ts';
import { parseRunMount } from '../dockerfile/mounts.ts';
import { renderInstruction } from '../plan/render.ts';
import { envDigest } from '../cache/key.ts';
import { sourcesDigest, type StatIndex } from '../cache/sources-digest.ts';
import type { KeyParts } from '../cache/types.ts';
import type { StepContext } from './steps/context.ts';

export interface KeyHelpers {
  index: StatIndex;
  platform: string;
  /** Final chain key of a stage named by a --from value, or undefined when it is not a stage. */
  stageKey(from: string): string | undefined;
  /** Pinned digest of an image named by a --from value. */
  imageDigest(ref: string): Promise<string>;
}

export function chainMetadata(chain: string, ins: Instruction): string {
  return createHash('sha256').update(chain).update('\0').update(renderInstruction(ins)).digest('hex');
}

async function fromDigest(from: string, h: KeyHelpers): Promise<string> {
  return h.stageKey(from) ?? `image:${await h.imageDigest(from)}`;
}

export async function stepKeyParts(
  ins: Instruction,
  ctx: StepContext,
  chain: string,
  h: KeyHelpers,
): Promise<KeyParts | null> {
  const cfg = ctx.builder.config.config ?? {};
  // Only what the step can observe: RUN sees build args and the whole config; COPY/ADD only the
  // workdir (relative destinations); WORKDIR the user that will own a created directory. So a build
  // arg change misses from its first use, not from its declaration.
  const env =
    ins.kind === 'run'
      ? envDigest(ctx.scope.runArgs(), {
          env: (cfg.Env ?? []).join('\0'),
          user: cfg.User ?? '',
          workdir: cfg.WorkingDir ?? '',
          shell: (cfg.Shell ?? []).join('\0'),
          platform: h.platform,
          network: ins.network ?? ctx.opts.network,
        })
      : envDigest([], {
          workdir: cfg.WorkingDir ?? '',
          user: ins.kind === 'workdir' ? (cfg.User ?? '') : '',
          platform: h.platform,
        });
  const instruction = renderInstruction(ins);
  const src = createHash('sha256');
  if (ins.kind === 'run') {
    for (const h2 of ins.heredocs) src.update(`heredoc:${h2.name}\0${h2.content}\0`);
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
  } else if (ins.kind === 'copy' || ins.kind === 'add') {
    for (const d of ins.heredocs) src.update(`heredoc:${d.name}\0${d.content}\0`);
    if (ins.from !== undefined) {
      src.update(`from:${await fromDigest(ins.from, h)}\0`);
    } else {
      for (const s of ins.sources) {
        if (s.startsWith('<<')) continue;
        if (/^https?:\/\//i.test(s)) {
          if (!ins.checksum) return null;
          src.update(`url:${s}\0${ins.checksum}\0`);
          continue;
        }
        const r = await ctx.context.resolve(s, ins.at);
        src.update(`src:${s}\0${await sourcesDigest(r.sources, h.index, ctx.context.skip)}\0`);
      }
    }
  }
  return { parent: chain, instruction, env, sources: src.digest('hex') };
}
