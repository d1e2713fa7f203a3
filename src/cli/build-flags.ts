/**
 * Commander glue for the flag table (flag-table.ts): Kaniko's executor flags (same names, same
 * repeatable/`key=value` forms, `--flag=true|false` for booleans) plus kiln's own, each turned into a
 * commander Option, with KILN_<FLAG> environment variables filling in what argv did not give.
 * Migration from Kaniko is a rename of the binary.
 */
import { Command, Option, InvalidArgumentError } from 'commander';
import type { BuildOptions } from '../options.ts';
import { KilnError } from '../util/errors.ts';
import { BUILD_FLAGS, BUILD_ONLY_FLAGS, FLAG_GROUPS, type FlagSpec } from './flag-table.ts';
import { FlagValueError, parseBool, parseIntArg } from './flag-values.ts';
import { attributeOf, optionsFromFlags, readFlags } from './to-options.ts';

export { FLAG_GROUPS, envNameOf } from './flag-table.ts';
export { parseSecretFlag } from './flag-values.ts';
export { envCredentials } from './to-options.ts';

/** A table parser as commander wants it: its own error type, so the message reads as a usage error. */
function forCommander<T>(parse: (v: string, prev: T) => T): (v: string, prev: T) => T {
  return (v, prev) => {
    try {
      return parse(v, prev);
    } catch (e) {
      if (e instanceof FlagValueError) throw new InvalidArgumentError(e.message);
      throw e;
    }
  };
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** One commander Option for a table entry, under `long` (the flag's name or one of its aliases). */
export function optionOf(f: FlagSpec, long: string = f.long): Option {
  const names = `${long === f.long && f.short ? `${f.short}, ` : ''}${long}`;
  let o: Option;
  if (f.type === 'bool') {
    o = new Option(`${names} [bool]`, f.help).argParser(forCommander(parseBool));
    // Kaniko's --no-push is a flag of its own (with =true/=false), not commander's negation of --push.
    o.negate = false;
  } else {
    o = new Option(`${names} <${f.arg}>`, f.help);
    if (f.type === 'list') o.argParser(collect).default([]);
    else if (f.type === 'int') o.argParser(forCommander(parseIntArg));
    else if (f.type === 'choice') o.choices(f.choices);
    if (f.type !== 'list' && f.default !== undefined) o.default(f.default);
  }
  if (f.hidden || long !== f.long) o.hideHelp();
  return o;
}

/** Adds every flag of `table` to `cmd`, grouped under FLAG_GROUPS; hidden ones last. */
export function addFlags(cmd: Command, table: Record<string, FlagSpec>): Command {
  const flags = Object.values(table);
  for (const group of FLAG_GROUPS) {
    const inGroup = flags.filter((f) => f.group === group && !f.hidden);
    if (inGroup.length === 0) continue;
    cmd.optionsGroup(group);
    for (const f of inGroup) cmd.addOption(optionOf(f));
  }
  for (const f of flags) {
    if (f.hidden) cmd.addOption(optionOf(f));
    for (const alias of f.aliases ?? []) cmd.addOption(optionOf(f, alias));
  }
  cmd.optionsGroup('Options:');
  return cmd;
}

export function addBuildFlags(cmd: Command, env: NodeJS.ProcessEnv = process.env): Command {
  addFlags(cmd, BUILD_FLAGS);
  // KILN_<FLAG> environment variables fill in what argv did not give, for every subcommand using these.
  cmd.hook('preAction', (thisCommand) => applyEnvFlags(thisCommand, env));
  return cmd;
}

/** `kiln build`'s own flags on top of the shared ones. */
export function addBuildOnlyFlags(cmd: Command): Command {
  for (const f of Object.values(BUILD_ONLY_FLAGS)) cmd.addOption(optionOf(f));
  return cmd;
}

function specOf(long: string): FlagSpec | undefined {
  return Object.values(BUILD_FLAGS as Record<string, FlagSpec>).find((f) => f.long === long);
}

/** Splits a KILN_ list variable as its flag's table entry says (newlines always separate). */
export function splitEnvList(long: string, value: string): string[] {
  const f = specOf(long);
  const split = f?.type === 'list' ? f.envSplit : 'comma';
  const lines = value.split(/\r?\n/);
  const parts =
    split === 'newline'
      ? lines
      : split === 'key-value'
        ? lines.flatMap((l) => l.split(/,(?=\s*[^,=\s]+=)/))
        : lines.flatMap((l) => l.split(','));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function envValue(f: FlagSpec, raw: string): unknown {
  const v = raw.trim();
  switch (f.type) {
    case 'list':
      return splitEnvList(f.long, raw);
    case 'bool':
      return parseBool(v);
    case 'int':
      return parseIntArg(v);
    case 'choice':
      if (!f.choices.includes(v))
        throw new FlagValueError(`argument '${v}' is invalid. Allowed choices are ${f.choices.join(', ')}.`);
      return v;
    case 'string':
      return v;
  }
}

/**
 * Every visible flag can be given as KILN_<FLAG_NAME> (e.g. KILN_DESTINATION, KILN_NO_PUSH=true); a
 * flag given on the command line wins. Repeatable flags take a newline- or comma-separated list.
 */
export function applyEnvFlags(cmd: Command, env: NodeJS.ProcessEnv): void {
  const known = new Set(cmd.options.map((o) => o.attributeName()));
  for (const [key, f] of Object.entries({ ...BUILD_FLAGS, ...BUILD_ONLY_FLAGS } as Record<
    string,
    FlagSpec
  >)) {
    if (!f.env || !known.has(key)) continue;
    const raw = env[f.env];
    if (raw === undefined || raw.trim() === '') continue;
    const source = cmd.getOptionValueSource(key);
    if (source !== undefined && source !== 'default') continue;
    let value: unknown;
    try {
      value = envValue(f, raw);
    } catch (e) {
      throw new KilnError(
        'usage',
        'BAD_ENV',
        `${f.env}="${raw}": ${e instanceof Error ? e.message : String(e)}`,
        {
          hint: `fix ${f.env} or pass ${f.long} on the command line`,
          cause: e,
        },
      );
    }
    cmd.setOptionValueWithSource(key, value, 'env');
  }
}

/** commander's parsed values → BuildOptions (no I/O apart from reading env for `--build-arg NAME`). */
export function toBuildOptions(
  o: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): BuildOptions {
  return optionsFromFlags(readFlags(o), env);
}

export { attributeOf };
