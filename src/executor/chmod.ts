/**
 * `COPY --chmod` values: octal (`755`, `0644`) or symbolic (`u+x,g-w,o=r`, `+x`, `a=rwX`), as
 * BuildKit accepts them. Symbolic modes are applied to each file's own mode.
 */
import { KilnError, type SourcePosition } from '../util/errors.ts';

export type ChmodSpec = { kind: 'octal'; mode: number } | { kind: 'symbolic'; clauses: SymbolicClause[] };

interface SymbolicClause {
  who: number; // mask of the bits the clause touches (u, g, o); 0o7777 for `a` or none
  op: '+' | '-' | '=';
  perms: string;
}

export function parseChmod(value: string, at?: SourcePosition): ChmodSpec {
  if (/^[0-7]{1,4}$/.test(value)) return { kind: 'octal', mode: parseInt(value, 8) };
  const clauses: SymbolicClause[] = [];
  for (const part of value.split(',')) {
    const m = /^([ugoa]*)([+\-=])([rwxXst]*)$/.exec(part);
    if (!m) {
      throw new KilnError('dockerfile', 'BAD_CHMOD', `invalid --chmod value "${value}"`, {
        position: at,
        hint: 'use an octal mode like 755 or 0644, or a symbolic one like u+x,g-w,o=r',
      });
    }
    const whoChars = m[1]!;
    let who = 0;
    if (whoChars === '' || whoChars.includes('a')) who = 0o7777;
    else {
      if (whoChars.includes('u')) who |= 0o4700;
      if (whoChars.includes('g')) who |= 0o2070;
      if (whoChars.includes('o')) who |= 0o1007;
    }
    clauses.push({ who, op: m[2] as '+' | '-' | '=', perms: m[3]! });
  }
  return { kind: 'symbolic', clauses };
}

/** The new permission bits (lower 12 bits) for a file with `mode`. */
export function applyChmod(spec: ChmodSpec, mode: number, isDir: boolean): number {
  if (spec.kind === 'octal') return spec.mode;
  let cur = mode & 0o7777;
  for (const c of spec.clauses) {
    let bits = 0;
    for (const p of c.perms) {
      if (p === 'r') bits |= 0o444;
      else if (p === 'w') bits |= 0o222;
      else if (p === 'x') bits |= 0o111;
      else if (p === 'X') {
        if (isDir || (cur & 0o111) !== 0) bits |= 0o111;
      } else if (p === 's') bits |= 0o6000;
      else if (p === 't') bits |= 0o1000;
    }
    bits &= c.who;
    if (c.op === '+') cur |= bits;
    else if (c.op === '-') cur &= ~bits;
    else cur = (cur & ~(c.who & 0o7777)) | bits;
  }
  return cur;
}
