/**
 * Typed instructions: one variant per Dockerfile instruction, built from a RawInstruction with its
 * flags checked and its arguments split the way BuildKit splits them. Values are still unexpanded
 * (expansion needs the stage's ARG/ENV state, see plan/scope.ts); `expandable` words are marked by
 * living in string fields that the expander visits.
 */
import type { Heredoc, RawInstruction } from './ast.ts';
import { KilnError, type ErrorCode, type SourcePosition } from '../util/errors.ts';
import { parseFlags, type FlagSpec, type ParsedFlags } from './flags.ts';
import { closest } from './suggest.ts';
import { splitWhitespace, splitWordsKeepQuotes, type EscapeToken } from './words.ts';

export type CommandForm = { form: 'exec'; argv: string[] } | { form: 'shell'; script: string };

interface Base {
  /** Source position of the instruction's first line. */
  at: SourcePosition;
  /** The instruction text as written (continuations joined). */
  original: string;
}

export interface FromInstruction extends Base {
  kind: 'from';
  image: string;
  stageName?: string;
  platform?: string;
}
export interface RunInstruction extends Base {
  kind: 'run';
  command: CommandForm;
  /** Raw `--mount` values (parsed after expansion by dockerfile/mounts.ts). */
  mounts: string[];
  network?: string;
  security?: string;
  heredocs: Heredoc[];
}
export interface CmdInstruction extends Base {
  kind: 'cmd' | 'entrypoint';
  command: CommandForm;
}
export interface ShellInstruction extends Base {
  kind: 'shell';
  argv: string[];
}
export interface KeyValueInstruction extends Base {
  kind: 'env' | 'label';
  pairs: Array<[string, string]>;
}
export interface ArgInstruction extends Base {
  kind: 'arg';
  args: Array<{ name: string; default?: string }>;
}
export interface CopyInstruction extends Base {
  kind: 'copy' | 'add';
  sources: string[];
  dest: string;
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  checksum?: string;
  keepGitDir: boolean;
  unpack?: boolean;
  /** Heredocs used as sources, by name (`COPY <<EOF /dest`). */
  heredocs: Heredoc[];
  /** JSON form: sources and dest are taken literally apart from expansion. */
  json: boolean;
}
export interface ListInstruction extends Base {
  kind: 'expose' | 'volume';
  values: string[];
}
export interface StringInstruction extends Base {
  kind: 'user' | 'workdir' | 'stopsignal' | 'maintainer';
  value: string;
}
export interface HealthcheckInstruction extends Base {
  kind: 'healthcheck';
  none: boolean;
  test?: CommandForm;
  interval?: string;
  timeout?: string;
  startPeriod?: string;
  startInterval?: string;
  retries?: number;
}
export interface OnbuildInstruction extends Base {
  kind: 'onbuild';
  /** Trigger text as stored in the image config (`RUN echo hi`). */
  trigger: string;
  inner: Instruction;
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CmdInstruction
  | ShellInstruction
  | KeyValueInstruction
  | ArgInstruction
  | CopyInstruction
  | ListInstruction
  | StringInstruction
  | HealthcheckInstruction
  | OnbuildInstruction;

export const INSTRUCTION_NAMES = [
  'ADD',
  'ARG',
  'CMD',
  'COPY',
  'ENTRYPOINT',
  'ENV',
  'EXPOSE',
  'FROM',
  'HEALTHCHECK',
  'LABEL',
  'MAINTAINER',
  'ONBUILD',
  'RUN',
  'SHELL',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
] as const;

const FLAGS: Record<string, FlagSpec> = {
  from: { platform: 'string' },
  run: { mount: 'list', network: 'string', security: 'string' },
  copy: { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'list' },
  add: {
    chown: 'string',
    chmod: 'string',
    link: 'bool',
    exclude: 'list',
    checksum: 'string',
    'keep-git-dir': 'bool',
    unpack: 'bool',
  },
  healthcheck: {
    interval: 'string',
    timeout: 'string',
    'start-period': 'string',
    'start-interval': 'string',
    retries: 'string',
  },
};
/** Every instruction's flags, by instruction (a test checks that kiln's messages name only real ones). */
export { FLAGS as INSTRUCTION_FLAGS };

const STAGE_NAME_RE = /^[a-z][a-z0-9_.-]*$/;

function fail(code: ErrorCode<'dockerfile'>, message: string, at: SourcePosition, hint?: string): never {
  throw new KilnError('dockerfile', code, message, { position: at, ...(hint ? { hint } : {}) });
}

/**
 * BuildKit's parseJSON: text that starts with `[` and is a valid JSON array is the JSON form, and then
 * every element must be a string (an error otherwise, errDockerfileNotStringArray); text that is not
 * valid JSON is not the JSON form at all. Returns null for "not JSON".
 */
function parseJsonArray(rest: string, upper: string, at: SourcePosition): string[] | null {
  // Go's unicode.IsSpace (the left trim BuildKit applies before looking for "[").
  const t = rest.replace(/^[\s\u0085]+/u, '');
  if (!t.startsWith('[')) return null;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  if (!v.every((x) => typeof x === 'string')) {
    fail(
      'BAD_ARGUMENTS',
      `${upper}: when using JSON array syntax, arrays must be comprised of strings only`,
      at,
      'quote every element, e.g. ["echo", "1"]',
    );
  }
  return v as string[];
}

/**
 * `["a","b"]` → exec form; anything else (including invalid JSON, as Docker does) → shell form.
 * Returns the JSON-ness so callers can warn about a broken array.
 */
export function parseMaybeJson(
  rest: string,
  upper = 'RUN',
  at: SourcePosition = { file: 'Dockerfile', line: 0 },
): { command: CommandForm; brokenJson: boolean } {
  const argv = parseJsonArray(rest, upper, at);
  if (argv) return { command: { form: 'exec', argv }, brokenJson: false };
  return { command: { form: 'shell', script: rest }, brokenJson: rest.trim().startsWith('[') };
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's time.ParseDuration (what Docker uses for HEALTHCHECK options): nanoseconds, or null. */
export function goDurationNs(v: string): number | null {
  const m = /^([-+]?)(.*)$/.exec(v)!;
  const body = m[2]!;
  if (body === '0') return 0;
  if (body === '') return null;
  const re = /(\d*(?:\.\d*)?)(ns|us|µs|μs|ms|s|m|h)/y;
  let pos = 0;
  let total = 0;
  while (pos < body.length) {
    re.lastIndex = pos;
    const p = re.exec(body);
    if (!p || p[1] === '' || p[1] === '.') return null;
    total += Number(p[1]) * DURATION_UNITS[p[2]!]!;
    pos = re.lastIndex;
  }
  return m[1] === '-' ? -total : total;
}

function jsonList(rest: string, upper: string, at: SourcePosition): string[] | null {
  return parseJsonArray(rest, upper, at);
}

/** ENV and LABEL: `KEY value` (legacy, one pair) or `k=v k2="v 2"` (any number of pairs). */
function parseNameVal(
  kind: 'env' | 'label',
  rest: string,
  escape: EscapeToken,
  at: SourcePosition,
): Array<[string, string]> {
  const upper = kind.toUpperCase();
  const words = splitWordsKeepQuotes(rest, escape);
  if (words.length === 0)
    fail('MISSING_ARGUMENT', `${upper} requires at least one argument`, at, `write ${upper} key=value`);
  if (!words[0]!.includes('=')) {
    // BuildKit splits the legacy form on [\t\v\f\r ]+, the same white space parseWords stops at.
    const parts = rest.trim().split(/[ \t\v\f\r]+/);
    if (parts.length < 2) {
      fail(
        'BAD_ARGUMENTS',
        `${upper} ${rest.trim()}: a name needs a value`,
        at,
        `write ${upper} ${parts[0]}=<value>`,
      );
    }
    const m = /^([^ \t\v\f\r]+)[ \t\v\f\r]+([\s\S]*)$/.exec(rest.trim())!;
    return [[m[1]!, m[2]!]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq === -1) {
      fail(
        'BAD_ARGUMENTS',
        `${upper}: cannot find "=" in "${w}"`,
        at,
        `write it as name=value (quote values with spaces)`,
      );
    }
    if (eq === 0) fail('BAD_ARGUMENTS', `${upper}: "${w}" has an empty name`, at, 'write name=value');
    return [w.slice(0, eq), w.slice(eq + 1)] as [string, string];
  });
}

export interface ParseContext {
  escape: EscapeToken;
  file: string;
  /** Set while parsing an ONBUILD trigger. */
  inOnbuild?: boolean;
  /** Warnings (broken JSON, legacy forms) go here. */
  warn?: (at: SourcePosition, code: string, message: string) => void;
}

/** What every per-instruction parser gets: the raw instruction, its checked flags and helpers. */
interface KindInput {
  raw: RawInstruction;
  ctx: ParseContext;
  flags: ParsedFlags;
  rest: string;
  upper: string;
  at: SourcePosition;
  base: Base;
}

function warnBrokenJson(k: KindInput, brokenJson: boolean): void {
  if (brokenJson)
    k.ctx.warn?.(
      k.at,
      'InvalidJSON',
      `${k.upper} argument looks like JSON but is not a valid array of strings: it is run with a shell`,
    );
}

function parseFrom({ ctx, rest, at, flags, base }: KindInput): FromInstruction {
  if (ctx.inOnbuild) fail('BAD_ONBUILD', 'FROM is not allowed as an ONBUILD trigger', at);
  const args = splitWhitespace(rest);
  if (args.length !== 1 && !(args.length === 3 && args[1]!.toLowerCase() === 'as')) {
    fail(
      'BAD_ARGUMENTS',
      `FROM requires either one or three arguments: "FROM ${rest}"`,
      at,
      'write FROM <image> [AS <name>]',
    );
  }
  let stageName: string | undefined;
  if (args.length === 3) {
    stageName = args[2]!.toLowerCase();
    if (!STAGE_NAME_RE.test(stageName)) {
      fail(
        'BAD_STAGE_NAME',
        `invalid stage name "${args[2]}": it must start with a letter and contain only letters, digits, "-", "_" and "."`,
        at,
      );
    }
  }
  const platform = flags.strings.get('platform');
  return {
    kind: 'from',
    ...base,
    image: args[0]!,
    ...(stageName ? { stageName } : {}),
    ...(platform ? { platform } : {}),
  };
}

function parseRun(k: KindInput): RunInstruction {
  const { raw, rest, at, flags, base } = k;
  if (rest.trim() === '' && raw.heredocs.length === 0)
    fail('MISSING_ARGUMENT', 'RUN requires at least one argument', at);
  const { command, brokenJson } = parseMaybeJson(rest, k.upper, at);
  warnBrokenJson(k, brokenJson);
  const network = flags.strings.get('network');
  if (network !== undefined && !['default', 'none', 'host'].includes(network)) {
    fail('BAD_FLAG', `RUN --network=${network}: must be default, none or host`, at);
  }
  const security = flags.strings.get('security');
  if (security !== undefined && !['sandbox', 'insecure'].includes(security)) {
    fail('BAD_FLAG', `RUN --security=${security}: must be sandbox or insecure`, at);
  }
  return {
    kind: 'run',
    ...base,
    command,
    mounts: flags.lists.get('mount') ?? [],
    ...(network ? { network } : {}),
    ...(security ? { security } : {}),
    heredocs: raw.heredocs,
  };
}

function parseCmd(k: KindInput): CmdInstruction {
  const { command, brokenJson } = parseMaybeJson(k.rest, k.upper, k.at);
  warnBrokenJson(k, brokenJson);
  return { kind: k.raw.keyword as 'cmd' | 'entrypoint', ...k.base, command };
}

function parseShell({ rest, at, base, upper }: KindInput): ShellInstruction {
  const list = jsonList(rest, upper, at);
  if (!list)
    fail(
      'BAD_ARGUMENTS',
      `SHELL requires the arguments in JSON form, got "${rest.trim()}"`,
      at,
      'write SHELL ["/bin/bash", "-c"]',
    );
  if (list.length === 0) fail('MISSING_ARGUMENT', 'SHELL requires at least one argument', at);
  return { kind: 'shell', ...base, argv: list };
}

function parseArg({ rest, ctx, at, base }: KindInput): ArgInstruction {
  const words = splitWordsKeepQuotes(rest, ctx.escape);
  if (words.length === 0)
    fail('MISSING_ARGUMENT', 'ARG requires at least one argument', at, 'write ARG name[=default]');
  const args = words.map((w) => {
    const eq = w.indexOf('=');
    const name = eq === -1 ? w : w.slice(0, eq);
    if (name === '') fail('BAD_ARGUMENTS', `ARG "${w}" has an empty name`, at);
    return eq === -1 ? { name } : { name, default: w.slice(eq + 1) };
  });
  return { kind: 'arg', ...base, args };
}

function parseCopy({ raw, rest, upper, at, flags, base }: KindInput): CopyInstruction {
  const kw = raw.keyword as 'copy' | 'add';
  const list = jsonList(rest, upper, at);
  const parts = list ?? splitWhitespace(rest);
  const heredocNames = new Set(raw.heredocs.map((h) => h.name));
  if (parts.length < 2) {
    fail(
      'MISSING_ARGUMENT',
      `${upper} requires at least two arguments (source and destination), got "${rest.trim()}"`,
      at,
      `write ${upper} <src>... <dest>`,
    );
  }
  const dest = parts[parts.length - 1]!;
  if (/^\d*<<-?/.test(dest)) fail('BAD_ARGUMENTS', `${upper} cannot have a heredoc as its destination`, at);
  const sources = parts.slice(0, -1).map((s) => {
    const m = /^\d*<<-?\s*["']?([^"']+)["']?$/.exec(s);
    return m && heredocNames.has(m[1]!) ? `<<${m[1]!}` : s;
  });
  const from = flags.strings.get('from');
  const chown = flags.strings.get('chown');
  const chmod = flags.strings.get('chmod');
  const checksum = flags.strings.get('checksum');
  const unpack = flags.bools.get('unpack');
  if (kw === 'copy' && from === '') fail('BAD_FLAG', 'COPY --from needs a stage name, index or image', at);
  return {
    kind: kw,
    ...base,
    sources,
    dest,
    ...(from !== undefined ? { from } : {}),
    ...(chown !== undefined ? { chown } : {}),
    ...(chmod !== undefined ? { chmod } : {}),
    link: flags.bools.get('link') ?? false,
    parents: flags.bools.get('parents') ?? false,
    exclude: flags.lists.get('exclude') ?? [],
    ...(checksum !== undefined ? { checksum } : {}),
    keepGitDir: flags.bools.get('keep-git-dir') ?? false,
    ...(unpack !== undefined ? { unpack } : {}),
    heredocs: raw.heredocs,
    json: list !== null,
  };
}

function parseExpose({ rest, at, base }: KindInput): ListInstruction {
  const values = splitWhitespace(rest);
  if (values.length === 0)
    fail('MISSING_ARGUMENT', 'EXPOSE requires at least one argument', at, 'write EXPOSE 80/tcp');
  return { kind: 'expose', ...base, values };
}

function parseVolume({ rest, upper, at, base }: KindInput): ListInstruction {
  const list = jsonList(rest, upper, at);
  const values = list ?? splitWhitespace(rest);
  if (values.length === 0) fail('MISSING_ARGUMENT', 'VOLUME requires at least one argument', at);
  if (values.some((v) => v.trim() === '')) fail('BAD_ARGUMENTS', 'VOLUME paths cannot be empty strings', at);
  return { kind: 'volume', ...base, values };
}

function parseSingle({ raw, rest, upper, at, base }: KindInput): StringInstruction {
  const kw = raw.keyword as StringInstruction['kind'];
  const v = rest.trim();
  if (v === '') fail('MISSING_ARGUMENT', `${upper} requires exactly one argument`, at);
  if (kw !== 'user' && kw !== 'workdir' && kw !== 'maintainer' && splitWhitespace(v).length !== 1) {
    fail('BAD_ARGUMENTS', `${upper} requires exactly one argument, got "${v}"`, at);
  }
  return { kind: kw, ...base, value: v };
}

function healthcheckRetries(flags: ParsedFlags, at: SourcePosition): number | undefined {
  const r = flags.strings.get('retries');
  if (r === undefined) return undefined;
  if (!/^-?\d+$/.test(r)) fail('BAD_FLAG', `HEALTHCHECK --retries=${r}: not an integer`, at);
  const retries = Number(r);
  if (retries < 0) fail('BAD_FLAG', `HEALTHCHECK --retries=${r}: cannot be negative`, at);
  return retries;
}

function parseHealthcheck(k: KindInput): HealthcheckInstruction {
  const { raw, rest, at, flags, base } = k;
  const m = /^(\S+)\s*([\s\S]*)$/.exec(rest.trim());
  if (!m) fail('MISSING_ARGUMENT', 'HEALTHCHECK requires an argument: NONE or CMD <command>', at);
  const type = m[1]!.toUpperCase();
  if (type === 'NONE') {
    if (m[2]!.trim() !== '') fail('BAD_ARGUMENTS', 'HEALTHCHECK NONE takes no other arguments', at);
    if (raw.flags.length > 0) fail('BAD_FLAG', 'HEALTHCHECK NONE takes no options', at);
    return { kind: 'healthcheck', ...base, none: true };
  }
  if (type !== 'CMD')
    fail(
      'BAD_ARGUMENTS',
      `unknown HEALTHCHECK type "${m[1]}"`,
      at,
      'write HEALTHCHECK [options] CMD <command> or HEALTHCHECK NONE',
    );
  if (m[2]!.trim() === '') fail('MISSING_ARGUMENT', 'HEALTHCHECK CMD requires a command', at);
  const { command, brokenJson } = parseMaybeJson(m[2]!, 'HEALTHCHECK', at);
  warnBrokenJson(k, brokenJson);
  const retries = healthcheckRetries(flags, at);
  const opt = (key: string): string | undefined => flags.strings.get(key);
  for (const key of ['interval', 'timeout', 'start-period', 'start-interval']) {
    const v = opt(key);
    if (v === undefined || v === '') continue;
    const ns = goDurationNs(v);
    if (ns === null)
      fail('BAD_FLAG', `HEALTHCHECK --${key}=${v}: not a duration`, at, 'write e.g. 30s, 1m30s or 500ms');
    if (ns !== 0 && ns < 1e6) fail('BAD_FLAG', `HEALTHCHECK --${key}=${v}: cannot be less than 1ms`, at);
  }
  return {
    kind: 'healthcheck',
    ...base,
    none: false,
    test: command,
    ...(opt('interval') !== undefined ? { interval: opt('interval')! } : {}),
    ...(opt('timeout') !== undefined ? { timeout: opt('timeout')! } : {}),
    ...(opt('start-period') !== undefined ? { startPeriod: opt('start-period')! } : {}),
    ...(opt('start-interval') !== undefined ? { startInterval: opt('start-interval')! } : {}),
    ...(retries !== undefined ? { retries } : {}),
  };
}

function parseOnbuild({ raw, ctx, rest, at, base }: KindInput): OnbuildInstruction {
  if (ctx.inOnbuild) fail('BAD_ONBUILD', 'ONBUILD ONBUILD is not allowed', at);
  const trigger = raw.original.replace(/^\S+\s+/, '').trim();
  if (rest.trim() === '' && raw.flags.length === 0)
    fail('MISSING_ARGUMENT', 'ONBUILD requires an instruction', at);
  const innerRaw = splitTrigger(trigger, raw);
  if (innerRaw.keyword === 'maintainer')
    fail('BAD_ONBUILD', 'MAINTAINER is not allowed as an ONBUILD trigger', at);
  const inner = parseInstruction(innerRaw, { ...ctx, inOnbuild: true });
  return { kind: 'onbuild', ...base, trigger, inner };
}

/** One parser per instruction keyword; the Record type makes a missing keyword a compile error. */
const PARSERS: Record<Lowercase<(typeof INSTRUCTION_NAMES)[number]>, (k: KindInput) => Instruction> = {
  from: parseFrom,
  run: parseRun,
  cmd: parseCmd,
  entrypoint: parseCmd,
  shell: parseShell,
  env: (k) => ({ kind: 'env', ...k.base, pairs: parseNameVal('env', k.rest, k.ctx.escape, k.at) }),
  label: (k) => ({ kind: 'label', ...k.base, pairs: parseNameVal('label', k.rest, k.ctx.escape, k.at) }),
  arg: parseArg,
  copy: parseCopy,
  add: parseCopy,
  expose: parseExpose,
  volume: parseVolume,
  user: parseSingle,
  workdir: parseSingle,
  stopsignal: parseSingle,
  maintainer: parseSingle,
  healthcheck: parseHealthcheck,
  onbuild: parseOnbuild,
};

export function parseInstruction(raw: RawInstruction, ctx: ParseContext): Instruction {
  const at: SourcePosition = { file: ctx.file, line: raw.line };
  const kw = raw.keyword;
  const upper = kw.toUpperCase();
  const parser = Object.hasOwn(PARSERS, kw) ? PARSERS[kw as keyof typeof PARSERS] : undefined;
  if (!parser) {
    const guess = closest(kw, INSTRUCTION_NAMES);
    fail(
      'UNKNOWN_INSTRUCTION',
      `unknown instruction "${raw.keywordAsWritten}"${guess ? ` (did you mean ${guess}?)` : ''}`,
      at,
      `instructions are ${INSTRUCTION_NAMES.join(', ')}`,
    );
  }
  const flags: ParsedFlags = parseFlags(upper, raw.flags, FLAGS[kw] ?? {}, at);
  return parser({ raw, ctx, flags, rest: raw.rest, upper, at, base: { at, original: raw.original } });
}

import { splitInstruction } from './parser.ts';

function splitTrigger(trigger: string, raw: RawInstruction): RawInstruction {
  const inner = splitInstruction(trigger, '', raw.line);
  return { ...inner, heredocs: raw.heredocs, line: raw.line, endLine: raw.endLine };
}
