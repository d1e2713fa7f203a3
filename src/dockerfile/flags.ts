/**
 * Instruction flags with BuildKit's BFlags rules: `--name=value` for strings, `--name` or
 * `--name=true|false` for booleans, repeatable list flags, and errors naming the flag.
 */
import { KilnError, type SourcePosition } from '../util/errors.ts';
import { closest } from './suggest.ts';

export type FlagKind = 'string' | 'bool' | 'list';
export type FlagSpec = Record<string, FlagKind>;

export interface ParsedFlags {
  strings: Map<string, string>;
  bools: Map<string, boolean>;
  lists: Map<string, string[]>;
}

export function parseFlags(
  instruction: string,
  words: string[],
  spec: FlagSpec,
  at: SourcePosition,
): ParsedFlags {
  const out: ParsedFlags = { strings: new Map(), bools: new Map(), lists: new Map() };
  for (const word of words) {
    if (!word.startsWith('--')) {
      throw new KilnError('dockerfile', 'BAD_FLAG', `${instruction}: flag "${word}" must start with --`, {
        position: at,
      });
    }
    const body = word.slice(2);
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const value = eq === -1 ? undefined : body.slice(eq + 1);
    const kind = spec[name];
    if (kind === undefined) {
      const known = Object.keys(spec);
      const guess = closest(name, known);
      throw new KilnError('dockerfile', 'UNKNOWN_FLAG', `${instruction}: unknown flag --${name}`, {
        position: at,
        hint: guess
          ? `did you mean --${guess}?`
          : known.length
            ? `${instruction} accepts ${known.map((k) => `--${k}`).join(', ')}`
            : `${instruction} takes no flags`,
      });
    }
    if (kind === 'bool') {
      if (value === undefined) out.bools.set(name, true);
      else if (/^true$/i.test(value)) out.bools.set(name, true);
      else if (/^false$/i.test(value)) out.bools.set(name, false);
      else
        throw new KilnError(
          'dockerfile',
          'BAD_FLAG',
          `${instruction}: --${name} expects true or false, not "${value}"`,
          {
            position: at,
          },
        );
      continue;
    }
    if (value === undefined) {
      throw new KilnError('dockerfile', 'BAD_FLAG', `${instruction}: --${name} needs a value`, {
        position: at,
        hint: `write --${name}=<value>`,
      });
    }
    if (kind === 'list') {
      const list = out.lists.get(name) ?? [];
      list.push(value);
      out.lists.set(name, list);
    } else {
      if (out.strings.has(name)) {
        throw new KilnError('dockerfile', 'DUPLICATE_FLAG', `${instruction}: --${name} is given twice`, {
          position: at,
          hint: 'keep one of them',
        });
      }
      out.strings.set(name, value);
    }
  }
  return out;
}
