/**
 * `COPY --chmod` values as BuildKit reads them (dockerfile2llb/convert_copy.go): an octal number up
 * to 07777 (strconv.ParseUint base 8), else a chmod(1) symbolic mode parsed like BSD setmode, which
 * BuildKit uses through tonistiigi/dchapes-mode: clauses `[ugoa]*[+-=][rwxXst]*|[ugo]` separated by
 * commas, several operations per clause (`u+x-w`), copies between classes (`go=u`), `X` only with
 * `+`. Written here from chmod(1)/setmode semantics: the grammar is small and must match exactly.
 */
import { KilnError, type SourcePosition } from '../util/errors.ts';

/** One bit operation, applied in order (BSD setmode's bitcmd). */
interface BitCmd {
  /** `+`/`-` set/clear `bits`; `X` sets `bits` when the file is a directory or had any x bit; u/g/o copy. */
  cmd: '+' | '-' | 'X' | 'u' | 'g' | 'o';
  bits: number;
  /** For copies: which classes receive the copied bits, and whether they are cleared/set first. */
  toU?: boolean;
  toG?: boolean;
  toO?: boolean;
  clear?: boolean;
  set?: boolean;
}

export type ChmodSpec = { kind: 'octal'; mode: number } | { kind: 'symbolic'; cmds: BitCmd[] };

const SUID = 0o4000;
const SGID = 0o2000;
const STICKY = 0o1000;
const STANDARD = SUID | SGID | 0o777;

function bad(value: string, at: SourcePosition | undefined, numeric: boolean): KilnError {
  return new KilnError('dockerfile', 'BAD_CHMOD', `invalid --chmod value "${value}"`, {
    position: at,
    hint: numeric
      ? 'an octal mode must be between 0 and 07777, e.g. 755 or 0644'
      : 'use an octal mode like 755 or 0644, or a symbolic one like u+x,g-w,o=r or go=u',
  });
}

function addCmd(cmds: BitCmd[], op: '+' | '-' | '=' | 'X', who: number, arg: number): void {
  if (op === '=') {
    cmds.push({ cmd: '-', bits: who !== 0 ? who : STANDARD });
    op = '+';
  }
  cmds.push({ cmd: op, bits: who !== 0 ? who & arg : arg });
}

function addCopy(cmds: BitCmd[], from: 'u' | 'g' | 'o', who: number, op: '+' | '-' | '='): void {
  const all = who === 0;
  cmds.push({
    cmd: from,
    bits: ~0,
    toU: all || (who & 0o400) !== 0,
    toG: all || (who & 0o040) !== 0,
    toO: all || (who & 0o004) !== 0,
    clear: op !== '+',
    set: op !== '-',
  });
}

/** Reads one clause's operations from `s` at `i`; returns the index after them. */
function parseOps(
  value: string,
  s: string,
  i: number,
  who: number,
  cmds: BitCmd[],
  at?: SourcePosition,
): number {
  for (;;) {
    const op = s[i++];
    if (op !== '+' && op !== '-' && op !== '=') throw bad(value, at, false);
    let clauseWho = who & ~STICKY;
    let perm = 0;
    let permX = 0;
    let equalDone = false;
    for (; ; i++) {
      const c = s[i];
      if (c === 'r') perm |= 0o444;
      else if (c === 'w') perm |= 0o222;
      else if (c === 'x') perm |= 0o111;
      else if (c === 'X') permX = op === '+' ? 0o111 : permX;
      else if (c === 's') perm |= clauseWho === 0 || (clauseWho & ~0o007) !== 0 ? SUID | SGID : 0;
      else if (c === 't') {
        // Sticky only when the clause is not for "other" alone (setmode's rule).
        if (clauseWho === 0 || (clauseWho & ~0o007) !== 0) {
          clauseWho |= STICKY;
          perm |= STICKY;
        }
      } else if (c === 'u' || c === 'g' || c === 'o') {
        if (perm !== 0) addCmd(cmds, op, clauseWho, perm);
        perm = 0;
        if (op === '=') equalDone = true;
        if (permX !== 0) addCmd(cmds, 'X', clauseWho, permX);
        permX = 0;
        addCopy(cmds, c, clauseWho, op);
      } else {
        if (perm !== 0 || (op === '=' && !equalDone)) addCmd(cmds, op, clauseWho, perm);
        if (permX !== 0) addCmd(cmds, 'X', clauseWho, permX);
        break;
      }
    }
    if (i >= s.length || s[i] === ',') return i;
  }
}

export function parseChmod(value: string, at?: SourcePosition): ChmodSpec {
  if (/^[0-9]/.test(value)) {
    if (!/^[0-7]+$/.test(value) || parseInt(value, 8) > 0o7777) throw bad(value, at, true);
    return { kind: 'octal', mode: parseInt(value, 8) };
  }
  const cmds: BitCmd[] = [];
  let i = 0;
  for (;;) {
    let who = 0;
    for (; i < value.length; i++) {
      const c = value[i];
      if (c === 'a') who |= STANDARD;
      else if (c === 'u') who |= SUID | 0o700;
      else if (c === 'g') who |= SGID | 0o070;
      else if (c === 'o') who |= 0o007;
      else break;
    }
    if (i >= value.length) throw bad(value, at, false);
    i = parseOps(value, value, i, who, cmds, at);
    if (i >= value.length) break;
    i++; // the comma
  }
  return { kind: 'symbolic', cmds };
}

/** The new permission bits (lower 12 bits) for a file with `mode`. */
export function applyChmod(spec: ChmodSpec, mode: number, isDir: boolean): number {
  if (spec.kind === 'octal') return spec.mode;
  const orig = mode & 0o7777;
  let cur = orig;
  for (const c of spec.cmds) {
    if (c.cmd === '+') cur |= c.bits;
    else if (c.cmd === '-') cur &= ~c.bits;
    else if (c.cmd === 'X') {
      // setmode looks at the mode before any operation, not at the bits changed so far.
      if (isDir || (orig & 0o111) !== 0) cur |= c.bits;
    } else {
      const shift = c.cmd === 'u' ? 6 : c.cmd === 'g' ? 3 : 0;
      const value = (cur >> shift) & 0o7;
      const clr = c.set ? 0o7 : value;
      if (c.clear) {
        if (c.toU) cur &= ~((clr << 6) & c.bits);
        if (c.toG) cur &= ~((clr << 3) & c.bits);
        if (c.toO) cur &= ~(clr & c.bits);
      }
      if (c.set) {
        if (c.toU) cur |= (value << 6) & c.bits;
        if (c.toG) cur |= (value << 3) & c.bits;
        if (c.toO) cur |= value & c.bits;
      }
    }
  }
  return cur & 0o7777;
}
