/**
 * Dockerfile → BuildPlan: typed instructions grouped into stages, global ARGs applied to FROM lines,
 * the stage graph (FROM <stage>, COPY --from, RUN --mount from=) with cycle and unknown-stage checks,
 * --target pruning and a build order. Instructions are expanded here with what the Dockerfile itself
 * defines (for the dry-run view and for resolving stage references); the executor expands them again
 * once the base image's ENV is known, through the same expandInstruction.
 */
import { createHash } from 'node:crypto';
import type { DockerfileAst } from '../dockerfile/ast.ts';
import { parseDockerfile } from '../dockerfile/parser.ts';
import { parseInstruction, type Instruction } from '../dockerfile/instructions.ts';
import { parseRunMount } from '../dockerfile/mounts.ts';
import { closest } from '../dockerfile/suggest.ts';
import type { Platform } from '../image/types.ts';
import type { NamedContext } from '../options.ts';
import type { EscapeToken } from '../dockerfile/words.ts';
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
  /**
   * What the stage does, as planned for this target platform: its expanded FROM and instructions and
   * the value of every ARG it declares. Equal across the plans of several target platforms (and the
   * same for its dependencies), the stage gives the same result for each and is built once.
   */
  fingerprint: string;
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
  /** The automatic TARGETSTAGE ARG: the target's name, or "default" when it has none. */
  targetStage: string;
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
  /** `--build-context` names (lowercased): they win over stages and images of the same name. */
  namedContexts?: Record<string, NamedContext>;
}

/** One or two characters off a one- or two-letter name is no evidence of a typo (`FROM go` vs stage `g`). */
const looksLikeStageTypo = (name: string): boolean =>
  name.length > 2 && /^[a-z][a-z0-9_.-]*$/.test(name) && !/[./:@]/.test(name);

export function planFromText(text: string, file: string, opts: PlanOptions): BuildPlan {
  return planBuild(parseDockerfile(text, file), opts);
}

/** A stage as pass 1 leaves it: its FROM and its typed body, nothing expanded. */
interface Draft {
  from: Instruction & { kind: 'from' };
  body: Instruction[];
}

/** Pass 1: typed instructions grouped by stage, and the ARGs before the first FROM. */
function collectDrafts(
  ast: DockerfileAst,
  warn: (at: SourcePosition, code: string, message: string) => void,
): { drafts: Draft[]; globalArgIns: Array<Instruction & { kind: 'arg' }> } {
  const { file } = ast;
  const escape = ast.directives.escape;
  const drafts: Draft[] = [];
  const globalArgIns: Array<Instruction & { kind: 'arg' }> = [];
  for (const raw of ast.instructions) {
    const ins = parseInstruction(raw, { escape, file, warn });
    if (ins.kind === 'from') drafts.push({ from: ins, body: [] });
    else if (drafts.length > 0) drafts[drafts.length - 1]!.body.push(ins);
    else if (ins.kind === 'arg') globalArgIns.push(ins);
    else {
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
  }
  if (drafts.length === 0) {
    throw new KilnError('dockerfile', 'NO_STAGE', 'the Dockerfile has no FROM instruction', {
      position: { file, line: 1 },
      hint: 'add FROM <image> (or FROM scratch) as the first instruction after any ARGs',
    });
  }
  return { drafts, globalArgIns };
}

/** Stage names (case-insensitive, unique) → index. */
function stageNameIndex(drafts: Draft[]): Map<string, number> {
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
  return byName;
}

/** A --from / FROM value → a stage index, or null for an image. */
type ResolveRef = (
  value: string,
  at: SourcePosition,
  what: string,
  allowIndex: boolean,
  /** Only stages before this index are visible (FROM sees earlier stages only, as in BuildKit). */
  before?: number,
) => number | null;

function makeResolveRef(
  byName: Map<string, number>,
  stageCount: number,
  namedContexts: Record<string, NamedContext>,
): ResolveRef {
  const stageNames = [...byName.keys()];
  return (value, at, what, allowIndex, before = stageCount) => {
    const lower = value.toLowerCase();
    if (Object.hasOwn(namedContexts, lower)) return null;
    const named = byName.get(lower);
    if (named !== undefined && named < before) return named;
    if (allowIndex && /^\d+$/.test(value)) {
      const i = Number(value);
      if (i >= stageCount) {
        throw new KilnError(
          'dockerfile',
          'UNKNOWN_STAGE',
          `${what} refers to stage ${i}, but the Dockerfile has ${stageCount} stage(s)`,
          {
            position: at,
            hint: `use an index from 0 to ${stageCount - 1}, or a stage name`,
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
}

/** What pass 2 shares between stages. */
interface StagePlanning {
  global: GlobalScope;
  escape: EscapeToken;
  resolveRef: ResolveRef;
  named: Record<string, NamedContext>;
  /** Each stage's ENV at its end: a stage built FROM an earlier stage starts with it. */
  stageEnv: Array<Map<string, string>>;
  warn: (at: SourcePosition, code: string, message: string) => void;
}

function stageBase(
  from: Instruction & { kind: 'from' },
  d: Draft,
  index: number,
  p: StagePlanning,
): StageBase {
  if (from.image.trim() === '') {
    throw new KilnError('dockerfile', 'EMPTY_BASE', `FROM "${d.from.image}" expands to an empty image name`, {
      position: d.from.at,
      hint: 'give the ARG it uses a default or pass --build-arg',
    });
  }
  if (from.image.toLowerCase() === 'scratch') return { kind: 'scratch' };
  const named = Object.hasOwn(p.named, from.image.toLowerCase())
    ? p.named[from.image.toLowerCase()]
    : undefined;
  if (named?.kind === 'image') return { kind: 'image', ref: named.ref };
  if (named?.kind === 'dir')
    throw new KilnError(
      'dockerfile',
      'NAMED_CONTEXT_BASE',
      `FROM ${from.image}: the named context is a directory`,
      {
        position: d.from.at,
        hint: `kiln reads a directory named context in COPY --from=${from.image} and RUN --mount from=${from.image}; as a base, pass --build-context ${from.image}=docker-image://<ref>`,
      },
    );
  const ref = p.resolveRef(from.image, d.from.at, `FROM ${from.image}`, false, index);
  return ref !== null ? { kind: 'stage', index: ref } : { kind: 'image', ref: from.image };
}

/** The stages and images an expanded instruction reads (COPY --from, RUN --mount from=). */
function instructionDeps(ins: Instruction, expanded: Instruction, p: StagePlanning): Array<number | string> {
  const out: Array<number | string> = [];
  const add = (from: string, what: string): void => {
    const named = Object.hasOwn(p.named, from.toLowerCase()) ? p.named[from.toLowerCase()] : undefined;
    if (named) {
      if (named.kind === 'image') out.push(named.ref);
      return;
    }
    const r = p.resolveRef(from, ins.at, what, true);
    out.push(r !== null ? r : from);
  };
  if ((expanded.kind === 'copy' || expanded.kind === 'add') && expanded.from !== undefined)
    add(expanded.from, `${ins.kind.toUpperCase()} --from=${expanded.from}`);
  if (expanded.kind === 'run') {
    expanded.mounts.forEach((m, mi) => {
      const req = parseRunMount(m, ins.at, mi);
      const from = req.type === 'bind' || req.type === 'cache' ? req.from : undefined;
      if (from !== undefined) add(from, `RUN --mount from=${from}`);
    });
  }
  return out;
}

/** Pass 2 for one stage: expansion with the Dockerfile's own ARG/ENV, and dependencies. */
function planStage(d: Draft, index: number, p: StagePlanning): PlannedStage {
  const fx = makeExpander(p.global.lookup, p.escape, d.from.at);
  const from = expandInstruction(d.from, fx) as Instruction & { kind: 'from' };
  const base = stageBase(from, d, index, p);
  const deps = new Set<number>();
  const imageDeps: string[] = [];
  if (base.kind === 'stage') deps.add(base.index);
  const scope = new StageScope(p.global, base.kind === 'stage' ? (p.stageEnv[base.index] ?? []) : []);
  p.stageEnv[index] = scope.env;
  const instructions: PlannedInstruction[] = [];
  const argValues: Array<[string, string | undefined]> = [];
  for (const ins of d.body) {
    const x = makeExpander(scope.lookup, p.escape, ins.at);
    if (ins.kind === 'arg') {
      for (const a of ins.args) {
        const name = x.word(a.name);
        scope.declareArg(name, a.default === undefined ? undefined : x.word(a.default));
        argValues.push([name, scope.lookup(name)]);
      }
      instructions.push({ instruction: ins, expanded: ins });
      continue;
    }
    const expanded = expandInstruction(ins, x);
    if (expanded.kind === 'env') for (const [k, v] of expanded.pairs) scope.setEnv(k, v);
    for (const dep of instructionDeps(ins, expanded, p)) {
      if (typeof dep === 'number') deps.add(dep);
      else imageDeps.push(dep);
    }
    if (expanded.kind === 'maintainer') {
      p.warn(
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
    fingerprint: createHash('sha256')
      .update(
        JSON.stringify([
          from,
          base,
          [...deps].sort(),
          imageDeps,
          argValues,
          instructions.map((i) => i.expanded),
        ]),
      )
      .digest('hex'),
  };
}

/** The --target stage's index (the last stage without one). */
function targetIndex(
  opts: PlanOptions,
  byName: Map<string, number>,
  stageCount: number,
  file: string,
): number {
  if (opts.target === undefined || opts.target === '') return stageCount - 1;
  const t = opts.target.toLowerCase();
  const i = byName.get(t);
  if (i !== undefined) return i;
  const stageNames = [...byName.keys()];
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

/**
 * Cycles and build order: depth-first from the target; cycles among stages the target does not
 * need are still errors, as in BuildKit. Marks the stages the target needs and returns their order.
 */
function buildOrder(stages: PlannedStage[], target: number): number[] {
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
  for (let i = 0; i < stages.length; i++) visit(i, []);
  const needed = new Set<number>();
  const mark = (i: number): void => {
    if (needed.has(i)) return;
    needed.add(i);
    for (const d of stages[i]!.deps) mark(d);
  };
  mark(target);
  for (const s of stages) s.needed = needed.has(s.index);
  return order.filter((i) => needed.has(i));
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
  const { drafts, globalArgIns } = collectDrafts(ast, warn);
  const byName = stageNameIndex(drafts);
  const target = targetIndex(opts, byName, drafts.length, file);
  // BuildKit's TARGETSTAGE: the --target name, else the last stage's name, else "default".
  const targetStage = drafts[target]!.from.stageName ?? 'default';
  const args = new BuildArgs(
    new Map(Object.entries(opts.buildArgs ?? {})),
    platformArgs(opts.targetPlatform, opts.buildPlatform, targetStage),
  );
  const global = new GlobalScope(args);
  const globalArgs: BuildPlan['globalArgs'] = [];
  for (const ins of globalArgIns) {
    const x = makeExpander(global.lookup, escape, ins.at);
    for (const a of ins.args) {
      // BuildKit's ArgCommand.Expand expands the name too (`ARG ${src}=...`).
      const name = x.word(a.name);
      global.declare(name, a.default === undefined ? undefined : x.word(a.default));
      globalArgs.push({ name, value: global.values.get(name) });
    }
  }
  const planning: StagePlanning = {
    global,
    escape,
    resolveRef: makeResolveRef(byName, drafts.length, opts.namedContexts ?? {}),
    named: opts.namedContexts ?? {},
    stageEnv: [],
    warn,
  };
  const stages = drafts.map((d, index) => planStage(d, index, planning));
  const order = buildOrder(stages, target);
  return {
    file,
    escape,
    ...(ast.directives.syntax ? { syntax: ast.directives.syntax } : {}),
    globalArgs,
    stages,
    target,
    targetStage,
    order,
    unusedBuildArgs: args.unconsumed(),
    warnings,
  };
}
