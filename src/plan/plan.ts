/**
 * Dockerfile → BuildPlan: typed instructions grouped into stages, global ARGs applied to FROM lines,
 * the stage graph (FROM <stage>, COPY --from, RUN --mount from=) with cycle and unknown-stage checks,
 * --target pruning and a build order. Instructions are expanded here with what the Dockerfile itself
 * defines (for the dry-run view and for resolving stage references); the executor expands them again
 * once the base image's ENV is known, through the same expandInstruction.
 */
import type { DockerfileAst } from '../dockerfile/ast.ts';
import { parseDockerfile } from '../dockerfile/parser.ts';
import { parseInstruction, type Instruction } from '../dockerfile/instructions.ts';
import { parseRunMount } from '../dockerfile/mounts.ts';
import { closest } from '../dockerfile/suggest.ts';
import type { Platform } from '../image/types.ts';
import { KilnError, type SourcePosition } from '../util/errors.ts';
import { expandInstruction, makeExpander } from './expand-instruction.ts';
import { BuildArgs, GlobalScope, StageScope, platformArgs } from './scope.ts';

export type StageBase =
  { kind: 'image'; ref: string } | { kind: 'stage'; index: number } | { kind: 'scratch' };

export interface PlannedInstruction {
  /** As parsed, unexpanded: the executor expands it with the real ENV. */
  instruction: Instruction;
  /** Expanded with what the Dockerfile defines (base image ENV unknown at plan time). */
  expanded: Instruction;
}

export interface PlannedStage {
  index: number;
  name?: string;
  from: Instruction & { kind: 'from' };
  base: StageBase;
  platform?: string;
  instructions: PlannedInstruction[];
  /** Stages this one reads from (base, COPY --from, RUN --mount from=). */
  deps: number[];
  /** Images read by COPY --from=<image> or --mount from=<image>. */
  imageDeps: string[];
  /** False when --target does not need it. */
  needed: boolean;
}

export interface PlanWarning {
  at?: SourcePosition;
  code: string;
  message: string;
}

export interface BuildPlan {
  file: string;
  escape: '\\' | '`';
  syntax?: string;
  globalArgs: Array<{ name: string; value: string | undefined }>;
  stages: PlannedStage[];
  target: number;
  /** Needed stages in an order where every dependency comes first. */
  order: number[];
  unusedBuildArgs: string[];
  warnings: PlanWarning[];
}

export interface PlanOptions {
  buildArgs?: Record<string, string>;
  target?: string;
  targetPlatform: Platform;
  buildPlatform: Platform;
}

/** One or two characters off a one- or two-letter name is no evidence of a typo (`FROM go` vs stage `g`). */
const looksLikeStageTypo = (name: string): boolean =>
  name.length > 2 && /^[a-z][a-z0-9_.-]*$/.test(name) && !/[./:@]/.test(name);

export function planFromText(text: string, file: string, opts: PlanOptions): BuildPlan {
  return planBuild(parseDockerfile(text, file), opts);
}

export function planBuild(ast: DockerfileAst, opts: PlanOptions): BuildPlan {
  const file = ast.file;
  const escape = ast.directives.escape;
  const warnings: PlanWarning[] = ast.warnings.map((w) => ({
    at: { file, line: w.line },
    code: w.code,
    message: w.message,
  }));
  const warn = (at: SourcePosition, code: string, message: string): void =>
    void warnings.push({ at, code, message });
  const args = new BuildArgs(
    new Map(Object.entries(opts.buildArgs ?? {})),
    platformArgs(opts.targetPlatform, opts.buildPlatform),
  );
  const global = new GlobalScope(args);
  const globalArgs: BuildPlan['globalArgs'] = [];

  // Pass 1: typed instructions grouped by stage.
  interface Draft {
    from: Instruction & { kind: 'from' };
    body: Instruction[];
  }
  const drafts: Draft[] = [];
  for (const raw of ast.instructions) {
    const ins = parseInstruction(raw, { escape, file, warn });
    if (ins.kind === 'from') {
      drafts.push({ from: ins, body: [] });
      continue;
    }
    if (drafts.length === 0) {
      if (ins.kind !== 'arg') {
        throw new KilnError(
          'dockerfile',
          'NO_STAGE',
          `${raw.keywordAsWritten.toUpperCase()} before the first FROM`,
          {
            position: ins.at,
            hint: 'only ARG may come before FROM; start the build with FROM <image>',
          },
        );
      }
      const x = makeExpander(global.lookup, escape, ins.at);
      for (const a of ins.args) {
        global.declare(a.name, a.default === undefined ? undefined : x.word(a.default));
        globalArgs.push({ name: a.name, value: global.values.get(a.name) });
      }
      continue;
    }
    drafts[drafts.length - 1]!.body.push(ins);
  }
  if (drafts.length === 0) {
    throw new KilnError('dockerfile', 'NO_STAGE', 'the Dockerfile has no FROM instruction', {
      position: { file, line: 1 },
      hint: 'add FROM <image> (or FROM scratch) as the first instruction after any ARGs',
    });
  }

  // Stage names (case-insensitive, unique).
  const byName = new Map<string, number>();
  drafts.forEach((d, i) => {
    const n = d.from.stageName;
    if (n === undefined) return;
    if (byName.has(n)) {
      throw new KilnError('dockerfile', 'DUPLICATE_STAGE', `duplicate stage name "${n}"`, {
        position: d.from.at,
        hint: `stage ${byName.get(n)} is already called "${n}"; give this one another name`,
      });
    }
    byName.set(n, i);
  });

  const stageNames = [...byName.keys()];
  /** A --from / FROM value → a stage index, or null for an image. */
  const resolveRef = (
    value: string,
    at: SourcePosition,
    what: string,
    allowIndex: boolean,
    /** Only stages before this index are visible (FROM sees earlier stages only, as in BuildKit). */
    before = drafts.length,
  ): number | null => {
    const lower = value.toLowerCase();
    const named = byName.get(lower);
    if (named !== undefined && named < before) return named;
    if (allowIndex && /^\d+$/.test(value)) {
      const i = Number(value);
      if (i >= drafts.length) {
        throw new KilnError(
          'dockerfile',
          'UNKNOWN_STAGE',
          `${what} refers to stage ${i}, but the Dockerfile has ${drafts.length} stage(s)`,
          {
            position: at,
            hint: `use an index from 0 to ${drafts.length - 1}, or a stage name`,
          },
        );
      }
      return i;
    }
    const visible = stageNames.filter((n) => byName.get(n)! < before);
    const guess = named === undefined ? closest(lower, visible) : undefined;
    if (guess && looksLikeStageTypo(lower)) {
      throw new KilnError(
        'dockerfile',
        'UNKNOWN_STAGE',
        `${what} refers to unknown stage "${value}" (did you mean ${guess}?)`,
        {
          position: at,
          hint: `stages are: ${stageNames.join(', ')}; an image name needs a registry or a tag to be told apart from a typo`,
        },
      );
    }
    return null;
  };

  // Pass 2: expansion with the Dockerfile's own ARG/ENV, and dependencies.
  /** Each stage's ENV at its end: a stage built FROM an earlier stage starts with it. */
  const stageEnv: Array<Map<string, string>> = [];
  const stages: PlannedStage[] = drafts.map((d, index) => {
    const fx = makeExpander(global.lookup, escape, d.from.at);
    const from = expandInstruction(d.from, fx) as Instruction & { kind: 'from' };
    if (from.image.trim() === '') {
      throw new KilnError(
        'dockerfile',
        'EMPTY_BASE',
        `FROM "${d.from.image}" expands to an empty image name`,
        {
          position: d.from.at,
          hint: 'give the ARG it uses a default or pass --build-arg',
        },
      );
    }
    let base: StageBase;
    const deps = new Set<number>();
    const imageDeps: string[] = [];
    if (from.image.toLowerCase() === 'scratch') base = { kind: 'scratch' };
    else {
      const ref = resolveRef(from.image, d.from.at, `FROM ${from.image}`, false, index);
      if (ref !== null) {
        base = { kind: 'stage', index: ref };
        deps.add(ref);
      } else base = { kind: 'image', ref: from.image };
    }
    const scope = new StageScope(global, base.kind === 'stage' ? (stageEnv[base.index] ?? []) : []);
    stageEnv[index] = scope.env;
    const instructions: PlannedInstruction[] = [];
    for (const ins of d.body) {
      const x = makeExpander(scope.lookup, escape, ins.at);
      if (ins.kind === 'arg') {
        for (const a of ins.args)
          scope.declareArg(a.name, a.default === undefined ? undefined : x.word(a.default));
        instructions.push({ instruction: ins, expanded: ins });
        continue;
      }
      const expanded = expandInstruction(ins, x);
      if (expanded.kind === 'env') for (const [k, v] of expanded.pairs) scope.setEnv(k, v);
      if ((expanded.kind === 'copy' || expanded.kind === 'add') && expanded.from !== undefined) {
        const r = resolveRef(
          expanded.from,
          ins.at,
          `${ins.kind.toUpperCase()} --from=${expanded.from}`,
          true,
        );
        if (r !== null) deps.add(r);
        else imageDeps.push(expanded.from);
      }
      if (expanded.kind === 'run') {
        expanded.mounts.forEach((m, mi) => {
          const req = parseRunMount(m, ins.at, mi);
          const from = req.type === 'bind' || req.type === 'cache' ? req.from : undefined;
          if (from !== undefined) {
            const r = resolveRef(from, ins.at, `RUN --mount from=${from}`, true);
            if (r !== null) deps.add(r);
            else imageDeps.push(from);
          }
        });
      }
      if (expanded.kind === 'maintainer') {
        warn(
          ins.at,
          'MaintainerDeprecated',
          'MAINTAINER is deprecated: use LABEL org.opencontainers.image.authors=...',
        );
      }
      instructions.push({ instruction: ins, expanded });
    }
    return {
      index,
      ...(d.from.stageName ? { name: d.from.stageName } : {}),
      from,
      base,
      ...(from.platform ? { platform: from.platform } : {}),
      instructions,
      deps: [...deps].sort((a, b) => a - b),
      imageDeps,
      needed: false,
    };
  });

  // Target.
  let target = stages.length - 1;
  if (opts.target !== undefined && opts.target !== '') {
    const t = opts.target.toLowerCase();
    if (!byName.has(t)) {
      const guess = closest(t, stageNames);
      throw new KilnError(
        'usage',
        'UNKNOWN_TARGET',
        `target stage "${opts.target}" is not in ${file}${guess ? ` (did you mean ${guess}?)` : ''}`,
        {
          hint: stageNames.length
            ? `named stages are: ${stageNames.join(', ')}`
            : 'name a stage with FROM <image> AS <name>',
        },
      );
    }
    target = byName.get(t)!;
  }

  // Cycles and build order: depth-first from the target.
  const order: number[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (i: number, path: number[]): void => {
    const s = state.get(i);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(i)), i].map((k) => stages[k]!.name ?? String(k));
      throw new KilnError(
        'dockerfile',
        'STAGE_CYCLE',
        `circular dependency between stages: ${cycle.join(' -> ')}`,
        {
          position: stages[i]!.from.at,
          hint: 'a stage cannot use itself or a stage that uses it',
        },
      );
    }
    state.set(i, 'visiting');
    for (const d of stages[i]!.deps) visit(d, [...path, i]);
    state.set(i, 'done');
    order.push(i);
  };
  visit(target, []);
  // Cycles among stages the target does not need are still errors, as in BuildKit.
  for (let i = 0; i < stages.length; i++) visit(i, []);
  // Only the target's closure is needed.
  const needed = new Set<number>();
  const mark = (i: number): void => {
    if (needed.has(i)) return;
    needed.add(i);
    for (const d of stages[i]!.deps) mark(d);
  };
  mark(target);
  for (const s of stages) s.needed = needed.has(s.index);
  const finalOrder = order.filter((i) => needed.has(i));

  return {
    file,
    escape,
    ...(ast.directives.syntax ? { syntax: ast.directives.syntax } : {}),
    globalArgs,
    stages,
    target,
    order: finalOrder,
    unusedBuildArgs: args.unconsumed(),
    warnings,
  };
}
