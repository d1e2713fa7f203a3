/**
 * Parsers for flag values, shared by the CLI and the CI adapters. No commander here: the adapters
 * bundle this module, and commander is most of a bundle that only writes argv.
 */
import type { SecretSpec } from '../options.ts';
import { KilnError } from '../util/errors.ts';

/** A value a parser rejected; the commander glue turns it into commander's own usage error. */
export class FlagValueError extends Error {}

/** Kaniko-style booleans: `--x` (undefined here), `--x=true|1|yes`, `--x=false|0|no`. */
export function parseBool(v: string | undefined): boolean {
  if (v === undefined) return true;
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new FlagValueError(`expected true or false, got "${v}"`);
}

export function parseIntArg(v: string): number {
  if (!/^\d+$/.test(v)) throw new FlagValueError(`expected a non-negative integer, got "${v}"`);
  return Number(v);
}

/**
 * `key=value` items → a record; a later key wins. With `fromEnv`, an item without `=` takes its
 * value from the environment, as docker and Kaniko do for `--build-arg NAME` (skipped when unset).
 */
export function keyValues(
  list: readonly string[],
  flag: string,
  env: NodeJS.ProcessEnv,
  fromEnv = false,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq === -1) {
      if (fromEnv) {
        if (env[item] !== undefined) out[item] = env[item];
        continue;
      }
      throw new KilnError('usage', 'BAD_FLAG_VALUE', `--${flag} "${item}" must be key=value`, {
        hint: `write --${flag} key=value`,
      });
    }
    if (eq === 0) throw new KilnError('usage', 'BAD_FLAG_VALUE', `--${flag} "${item}" has an empty key`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

export function parseSecretFlag(text: string): SecretSpec {
  const spec: Partial<SecretSpec> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const k = eq === -1 ? part : part.slice(0, eq);
    const v = eq === -1 ? '' : part.slice(eq + 1);
    if (k === 'id') spec.id = v;
    else if (k === 'src' || k === 'source') spec.src = v;
    else if (k === 'env') spec.env = v;
    else if (k === 'type') continue;
    else
      throw new KilnError('usage', 'BAD_FLAG_VALUE', `--secret: unknown key "${k}"`, {
        hint: 'write --secret id=<id>,src=<file> or --secret id=<id>,env=<VAR>',
      });
  }
  if (!spec.id)
    throw new KilnError('usage', 'BAD_FLAG_VALUE', '--secret needs id=<id>', {
      hint: 'write --secret id=<id>,src=<file>',
    });
  if (!spec.src && !spec.env) spec.env = spec.id;
  return spec as SecretSpec;
}

/** Go-style durations as Kaniko's --cache-ttl takes them (`336h`, `90m`, `30s`), in hours. */
export function parseDurationHours(v: string, flag = 'cache-ttl'): number {
  const m = /^(\d+(?:\.\d+)?)(h|m|s)?$/.exec(v);
  if (!m)
    throw new KilnError('usage', 'BAD_FLAG_VALUE', `--${flag} "${v}" is not a duration`, {
      hint: `write e.g. --${flag} 336h`,
    });
  const n = Number(m[1]);
  return m[2] === 'm' ? n / 60 : m[2] === 's' ? n / 3600 : n;
}
