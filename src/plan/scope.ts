/**
 * ARG and ENV visibility as BuildKit defines it. Global ARGs (before the first FROM) and the
 * automatic platform ARGs are visible to FROM lines only; inside a stage an ARG must be declared
 * again to be seen, and then takes the --build-arg value, else its own default, else the global
 * value. ENV (from the base image and the stage) always wins over an ARG of the same name.
 */
import type { Platform } from '../image/types.ts';

/**
 * ARGs every build defines without a declaration: BuildKit's defaultArgs (dockerfile2llb/platform.go),
 * the platform ARGs plus TARGETSTAGE (dockerfile 1.11: the target stage's name, "default" when it
 * has none). Global ARGs and FROM see them directly; inside a stage they need `ARG NAME`.
 */
export function platformArgs(
  target: Platform,
  build: Platform,
  targetStage = 'default',
): Map<string, string> {
  const fmt = (p: Platform): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
  return new Map([
    ['BUILDPLATFORM', fmt(build)],
    ['BUILDOS', build.os],
    ['BUILDOSVERSION', build['os.version'] ?? ''],
    ['BUILDARCH', build.architecture],
    ['BUILDVARIANT', build.variant ?? ''],
    ['TARGETPLATFORM', fmt(target)],
    ['TARGETOS', target.os],
    ['TARGETOSVERSION', target['os.version'] ?? ''],
    ['TARGETARCH', target.architecture],
    ['TARGETVARIANT', target.variant ?? ''],
    ['TARGETSTAGE', targetStage],
  ]);
}

/** Build args that need no ARG instruction to reach RUN, and stay out of history. */
export const PROXY_ARGS = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
];

/** Args passed by the user that BuildKit never warns about. */
export function isBuiltinArg(name: string): boolean {
  return PROXY_ARGS.includes(name) || name.startsWith('BUILDKIT_') || name === 'SOURCE_DATE_EPOCH';
}

export class BuildArgs {
  /** Names the Dockerfile declared anywhere in a built stage or the global scope. */
  readonly consumed = new Set<string>();
  /** The automatic ARGs, each replaced by a --build-arg of its name (BuildKit's defaultArgs overrides). */
  readonly automatic: ReadonlyMap<string, string>;
  constructor(
    readonly given: ReadonlyMap<string, string>,
    automatic: ReadonlyMap<string, string>,
  ) {
    this.automatic = new Map([...automatic].map(([k, v]) => [k, given.get(k) ?? v]));
  }

  /** Passed with --build-arg but never declared by an ARG: BuildKit's "not consumed" warning. */
  unconsumed(): string[] {
    return [...this.given.keys()].filter((k) => !this.consumed.has(k) && !isBuiltinArg(k)).sort();
  }
}

/** The global scope: what FROM lines see. */
export class GlobalScope {
  readonly values = new Map<string, string | undefined>();
  constructor(readonly args: BuildArgs) {}

  declare(name: string, expandedDefault: string | undefined): void {
    this.args.consumed.add(name);
    const v = this.args.given.has(name) ? this.args.given.get(name) : expandedDefault;
    this.values.set(name, v);
  }

  lookup = (name: string): string | undefined => {
    if (this.values.has(name)) return this.values.get(name);
    return this.args.automatic.get(name);
  };
}

/** One stage's scope: its ARGs (in declaration order) and its ENV. */
export class StageScope {
  readonly args = new Map<string, string | undefined>();
  readonly env = new Map<string, string>();

  constructor(
    readonly global: GlobalScope,
    baseEnv: Iterable<[string, string]> = [],
  ) {
    for (const [k, v] of baseEnv) this.env.set(k, v);
  }

  declareArg(name: string, expandedDefault: string | undefined): void {
    const buildArgs = this.global.args;
    buildArgs.consumed.add(name);
    let v: string | undefined;
    if (buildArgs.given.has(name)) v = buildArgs.given.get(name);
    else if (expandedDefault !== undefined) v = expandedDefault;
    else if (this.global.values.has(name)) v = this.global.values.get(name);
    else v = buildArgs.automatic.get(name);
    this.args.set(name, v);
  }

  setEnv(name: string, value: string): void {
    this.env.set(name, value);
  }

  lookup = (name: string): string | undefined => {
    if (this.env.has(name)) return this.env.get(name);
    if (this.args.has(name)) return this.args.get(name);
    return undefined;
  };

  /**
   * ARGs with a value, as RUN sees them in its environment (ENV of the same name wins, so those
   * are left out), plus proxy build args that need no declaration.
   */
  runArgs(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const [k, v] of this.args) if (v !== undefined && !this.env.has(k)) out.push([k, v]);
    for (const k of PROXY_ARGS) {
      const v = this.global.args.given.get(k);
      if (v !== undefined && !this.args.has(k) && !this.env.has(k)) out.push([k, v]);
    }
    return out;
  }
}
