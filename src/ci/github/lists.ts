/**
 * build-push-action's list rules (@docker/actions-toolkit Util.getInputList): one item per line,
 * each line also split on commas unless the input's items may hold commas, CSV quoting honoured,
 * `#` lines dropped; core.getBooleanInput's booleans; extra-args split like a shell command line.
 */
import { KilnError } from '../../util/errors.ts';

/** Splits one line as CSV: commas separate fields, "double quotes" keep commas, `""` is a quote. */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur.trim() === '') {
      quoted = true;
      wasQuoted = true;
      cur = '';
    } else if (c === ',') {
      out.push(wasQuoted ? cur : cur.trim());
      cur = '';
      wasQuoted = false;
    } else cur += c;
  }
  out.push(wasQuoted ? cur : cur.trim());
  return out;
}

/**
 * build-push-action's getInputList: items one per line; with `ignoreComma` false each line is also
 * split on commas (CSV quoting honoured). Empty items and lines starting with `#` are dropped.
 */
export function parseList(text: string, ignoreComma = false): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // A whole line in double quotes is one item with the quotes taken off, as the CSV reader
    // build-push-action uses does (its README quotes secrets that hold spaces or commas).
    const quoted = ignoreComma && /^"(?:[^"]|"")*"$/.test(line);
    const items = ignoreComma ? [quoted ? line.slice(1, -1).replace(/""/g, '"') : line] : splitCsvLine(line);
    for (const item of items) {
      const v = ignoreComma ? item : item.trim();
      if (v !== '') out.push(v);
    }
  }
  return out;
}

/** Like core.getBooleanInput (YAML 1.2 core schema booleans); '' takes the default. */
export function parseBoolInput(name: string, text: string, dflt: boolean): boolean {
  const v = text.trim();
  if (v === '') return dflt;
  if (['true', 'True', 'TRUE'].includes(v)) return true;
  if (['false', 'False', 'FALSE'].includes(v)) return false;
  throw new KilnError('usage', 'BAD_INPUT', `input ${name} is "${v}", expected true or false`, {
    hint: `set ${name}: true or ${name}: false`,
  });
}

/** Splits a command line like a POSIX shell would for words and quotes (no expansion). */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let q: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (q === "'") {
      if (c === "'") q = null;
      else cur += c;
    } else if (q === '"') {
      if (c === '"') q = null;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) cur += text[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      q = c;
      has = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur !== '') out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (q)
    throw new KilnError('usage', 'BAD_INPUT', `input extra-args has an unterminated ${q} quote`, {
      hint: 'close the quote or escape it with a backslash',
    });
  if (has || cur !== '') out.push(cur);
  return out;
}
