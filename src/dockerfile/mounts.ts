/**
 * RUN --mount values (BuildKit's runmount syntax): CSV fields of key=value, key aliases, bare
 * booleans, per-type defaults. Parsed after expansion, so values may come from build args.
 */
import { posix } from 'node:path';
import { KilnError, type SourcePosition } from '../util/errors.ts';
import { closest } from './suggest.ts';

export type RunMountRequest =
  | {
      type: 'secret';
      id: string;
      target?: string;
      /** Also (or only) expose the secret as this environment variable. */
      env?: string;
      required: boolean;
      mode: number;
      uid: number;
      gid: number;
    }
  | {
      type: 'cache';
      id?: string;
      target: string;
      readonly: boolean;
      sharing: 'shared' | 'private' | 'locked';
      /** Seed the cache from this stage/image/context path the first time. */
      from?: string;
      source?: string;
      mode: number;
      uid: number;
      gid: number;
      /**
       * uid, gid or mode was written: BuildKit then mounts a directory it made with that owner and
       * mode, which is another cache than the plain one of the same id (see cacheMountKey).
       */
      explicitOwner?: true;
    }
  | {
      type: 'bind';
      target: string;
      /** Path inside `from` (or the context). */
      source: string;
      from?: string;
      readwrite: boolean;
    }
  | { type: 'tmpfs'; target: string; size?: number }
  | { type: 'ssh'; id?: string; target?: string; required: boolean };

const BOOL_KEYS = new Set(['readonly', 'ro', 'readwrite', 'rw', 'required']);
const KEYS: Record<string, string[]> = {
  bind: ['type', 'target', 'source', 'from', 'readonly', 'readwrite'],
  cache: ['type', 'id', 'target', 'source', 'from', 'readonly', 'sharing', 'mode', 'uid', 'gid'],
  secret: ['type', 'id', 'source', 'target', 'env', 'required', 'mode', 'uid', 'gid'],
  ssh: ['type', 'id', 'target', 'required', 'mode', 'uid', 'gid'],
  tmpfs: ['type', 'target', 'size'],
};
const ALIASES: Record<string, string> = {
  dst: 'target',
  destination: 'target',
  src: 'source',
  ro: 'readonly',
  rw: 'readwrite',
};

/** Splits a CSV line as Go's encoding/csv does for one record: `"` quotes a field, `""` is a quote. */
export function splitCsv(value: string): string[] {
  const fields: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  let atStart = true;
  while (i < value.length) {
    const ch = value[i]!;
    if (quoted) {
      if (ch === '"') {
        if (value[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += ch;
      i++;
      continue;
    }
    if (ch === '"' && atStart) {
      quoted = true;
      atStart = false;
      i++;
      continue;
    }
    if (ch === ',') {
      fields.push(field);
      field = '';
      atStart = true;
      i++;
      continue;
    }
    field += ch;
    atStart = false;
    i++;
  }
  fields.push(field);
  return fields;
}

function mountError(spec: string, message: string, at?: SourcePosition, hint?: string): KilnError {
  return new KilnError('dockerfile', 'BAD_MOUNT', `--mount=${spec}: ${message}`, {
    position: at,
    ...(hint ? { hint } : {}),
  });
}

/** Go's strconv.ParseBool, which BuildKit uses for ro/rw/required. */
function parseBool(v: string, key: string, spec: string, at?: SourcePosition): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw mountError(spec, `${key} must be true or false, not "${v}"`, at);
}

function parseInt10(v: string, key: string, spec: string, at?: SourcePosition, base = 10): number {
  const re = base === 8 ? /^[0-7]+$/ : /^\d+$/;
  if (!re.test(v)) {
    throw new KilnError('dockerfile', 'BAD_MOUNT', `--mount=${spec}: ${key}="${v}" is not a valid number`, {
      position: at,
      hint: base === 8 ? 'write the mode in octal, e.g. mode=0644' : `write ${key}=<non-negative integer>`,
    });
  }
  const n = parseInt(v, base);
  // strconv.ParseUint(v, base, 32): larger values are an error, not a wrap-around.
  if (n > 0xffffffff) throw mountError(spec, `${key}="${v}" is out of range`, at);
  return n;
}

/** Sizes like `64m`, `1g`, `512k`, `1024` (go-units RAMInBytes). */
export function parseSize(v: string, spec: string, at?: SourcePosition): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(v.trim());
  if (!m) {
    throw new KilnError('dockerfile', 'BAD_MOUNT', `--mount=${spec}: size="${v}" is not a size`, {
      position: at,
      hint: 'write e.g. size=64m or size=1g',
    });
  }
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[
    m[2]!.toLowerCase()
  ]!;
  return Math.floor(Number(m[1]) * mult);
}

/**
 * Where a cache mount's data lives, as BuildKit keys it: the id (default: the target as written,
 * cleaned, so `/c/` and `/c` share), plus the base it starts from. An explicit uid/gid/mode makes
 * BuildKit mount a directory it created with them (setCacheUIDGID), and its getRefCacheDir keys the
 * cache on id + that base: another cache. A from/source seed is another base too.
 */
export function cacheMountKey(r: RunMountRequest & { type: 'cache' }): string {
  const id = r.id ?? posix.normalize(r.target);
  const parts = [id];
  if (r.from !== undefined || r.source !== undefined) parts.push(`from=${r.from ?? ''}:${r.source ?? ''}`);
  else if (r.explicitOwner) parts.push(`owner=${r.uid}:${r.gid}:${r.mode.toString(8)}`);
  return parts.length === 1 ? id : parts.join('\0');
}

/** Go's path.Clean, which BuildKit applies to a cache target to get its default id. */
function cleanPath(p: string): string {
  if (p === '') return '.';
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** The CSV fields of a --mount value as key → value (aliases resolved, bare booleans = "true"). */
function readMountFields(spec: string, at?: SourcePosition): Map<string, string> {
  const kv = new Map<string, string>();
  for (const field of splitCsv(spec)) {
    const eq = field.indexOf('=');
    // BuildKit lower-cases keys but does not trim them: " target=/x" is an unknown key.
    let key = (eq === -1 ? field : field.slice(0, eq)).toLowerCase();
    key = ALIASES[key] ?? key;
    if (eq === -1 && !BOOL_KEYS.has(key)) {
      throw mountError(
        spec,
        field === '' ? 'empty field (a stray comma?)' : `"${field}" must be a key=value pair`,
        at,
        'e.g. --mount=type=cache,target=/root/.cache',
      );
    }
    // The last of readonly/readwrite wins, as BuildKit reads the fields in order.
    if (key === 'readwrite') {
      kv.delete('readonly');
      kv.set('readonly', String(!parseBool(eq === -1 ? 'true' : field.slice(eq + 1), key, spec, at)));
      continue;
    }
    if (key === 'readonly') kv.delete('readonly');
    kv.set(key, eq === -1 ? 'true' : field.slice(eq + 1));
  }
  return kv;
}

function checkMountKeys(kv: Map<string, string>, type: string, spec: string, at?: SourcePosition): string[] {
  const allowed = KEYS[type];
  if (!allowed)
    throw mountError(spec, `unknown mount type "${type}"`, at, 'use one of bind, cache, secret, ssh, tmpfs');
  for (const key of kv.keys()) {
    if (allowed.includes(key)) continue;
    const guess = closest(key, allowed);
    throw mountError(
      spec,
      `unexpected key "${key}" for type=${type}`,
      at,
      guess ? `did you mean ${guess}?` : `type=${type} takes ${allowed.join(', ')}`,
    );
  }
  return allowed;
}

interface MountFields {
  kv: Map<string, string>;
  spec: string;
  at: SourcePosition | undefined;
  num(key: string, dflt: number, base?: number): number;
  bool(key: string, dflt: boolean): boolean;
  needTarget(): string;
}

function cacheMount(f: MountFields): RunMountRequest {
  const sharing = (f.kv.get('sharing') ?? 'shared').toLowerCase();
  if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked')
    throw mountError(f.spec, 'sharing must be shared, private or locked', f.at);
  const t = f.needTarget();
  const explicitOwner = f.kv.has('uid') || f.kv.has('gid') || f.kv.has('mode');
  return {
    type: 'cache',
    id: f.kv.get('id') ?? cleanPath(t),
    target: t,
    readonly: f.bool('readonly', false),
    sharing,
    ...(f.kv.has('from') ? { from: f.kv.get('from')! } : {}),
    ...(f.kv.has('source') ? { source: f.kv.get('source')! } : {}),
    mode: f.num('mode', 0o755, 8),
    uid: f.num('uid', 0),
    gid: f.num('gid', 0),
    ...(explicitOwner ? { explicitOwner: true as const } : {}),
  };
}

/** BuildKit's parseMount checks and dispatchSecret defaults (id from source, else target's base). */
function secretMount(f: MountFields): RunMountRequest {
  const { kv, spec, at } = f;
  const target = kv.get('target') || undefined;
  if (kv.get('source') && kv.get('id'))
    throw mountError(spec, 'both source and id cannot be set on a secret mount', at);
  const id = kv.get('source') || kv.get('id') || (target ? posix.basename(target) : undefined);
  if (!id) {
    throw mountError(
      spec,
      'a secret mount needs an id, a source or a target',
      at,
      'write --mount=type=secret,id=<name> and pass --secret id=<name>,src=<file>',
    );
  }
  const env = kv.get('env') || undefined;
  return {
    type: 'secret',
    id,
    ...(target ? { target } : env ? {} : { target: `/run/secrets/${posix.basename(id)}` }),
    ...(env ? { env } : {}),
    required: f.bool('required', false),
    mode: f.num('mode', 0o400, 8),
    uid: f.num('uid', 0),
    gid: f.num('gid', 0),
  };
}

const MOUNT_BUILDERS: Record<string, (f: MountFields, index: number) => RunMountRequest> = {
  bind: (f) => ({
    type: 'bind',
    target: f.needTarget(),
    source: f.kv.get('source') ?? '/',
    ...(f.kv.has('from') ? { from: f.kv.get('from')! } : {}),
    readwrite: !f.bool('readonly', true),
  }),
  cache: cacheMount,
  secret: secretMount,
  ssh: (f, index) => ({
    type: 'ssh',
    id: f.kv.get('id') ?? 'default',
    target: f.kv.get('target') ?? `/run/buildkit/ssh_agent.${index}`,
    required: f.bool('required', false),
  }),
  tmpfs: (f) => {
    const size = f.kv.get('size');
    return {
      type: 'tmpfs',
      target: f.needTarget(),
      ...(size ? { size: parseSize(size, f.spec, f.at) } : {}),
    };
  },
};

/** Parses one `--mount` value. `index` numbers ssh mounts for their default target. */
export function parseRunMount(spec: string, at?: SourcePosition, index = 0): RunMountRequest {
  const kv = readMountFields(spec, at);
  const type = (kv.get('type') ?? 'bind').toLowerCase();
  checkMountKeys(kv, type, spec, at);
  const fields: MountFields = {
    kv,
    spec,
    at,
    num: (key, dflt, base = 10) => (kv.has(key) ? parseInt10(kv.get(key)!, key, spec, at, base) : dflt),
    bool: (key, dflt) => (kv.has(key) ? parseBool(kv.get(key)!, key, spec, at) : dflt),
    needTarget: () => {
      const target = kv.get('target');
      if (!target)
        throw mountError(spec, `type=${type} needs a target`, at, 'add target=<path in the container>');
      if (cleanPath(target) === '/') throw mountError(spec, `invalid mount target "${target}"`, at);
      return target;
    },
  };
  return MOUNT_BUILDERS[type]!(fields, index);
}
