/**
 * Cache keys. Every input is hashed in a fixed order with a version prefix, so that changing the
 * key scheme invalidates old entries instead of misreading them. Secrets enter only by id.
 */
import { createHash } from 'node:crypto';
import type { KeyParts } from './types.ts';

// v2: the instruction part is the canonical typed instruction, not its display text.
const SCHEME = 'kiln-cache-v2';

export function hashParts(parts: KeyParts): string {
  const h = createHash('sha256');
  for (const p of [SCHEME, parts.parent, parts.instruction, parts.env, parts.sources]) {
    h.update(String(Buffer.byteLength(p)));
    h.update(':');
    h.update(p);
  }
  return h.digest('hex');
}

/** Digest of name=value pairs, independent of their order. */
export function envDigest(pairs: Iterable<[string, string]>, extra: Record<string, string> = {}): string {
  const all = [...pairs].map(([k, v]) => `${k}=${v}`);
  for (const [k, v] of Object.entries(extra)) all.push(`#${k}=${v}`);
  all.sort();
  return createHash('sha256').update(all.join('\0')).digest('hex');
}

/** Which input changed between two keys of the same step, for the log. */
export function explainMiss(prev: KeyParts | null, now: KeyParts): string {
  if (!prev) return 'not built before';
  const why: string[] = [];
  if (prev.parent !== now.parent) why.push('an earlier step or the base image changed');
  if (prev.instruction !== now.instruction) why.push('the instruction changed');
  if (prev.env !== now.env) why.push('build args or environment changed');
  if (prev.sources !== now.sources) why.push('source files changed');
  return why.length ? why.join('; ') : 'entry missing or expired';
}

/**
 * JSON with object keys sorted and `omit` keys dropped at every depth, so that two equal values
 * always serialize alike. undefined fields are left out, as an absent optional field means the same.
 */
export function canonicalJson(value: unknown, omit: ReadonlySet<string> = new Set()): string {
  const norm = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(norm);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) {
        const x = (v as Record<string, unknown>)[k];
        if (!omit.has(k) && x !== undefined) out[k] = norm(x);
      }
      return out;
    }
    return v;
  };
  return JSON.stringify(norm(value));
}
