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
  secret: ['type', 'id', 'target', 'env', 'required', 'mode', 'uid', 'gid'],
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

function parseBool(v: string, key: string, spec: string, at?: SourcePosition): boolean {
  if (/^(true|1)$/i.test(v)) return true;
  if (/^(false|0)$/i.test(v)) return false;
  throw new KilnError(
    'dockerfile',
    'BAD_MOUNT',
    `--mount=${spec}: ${key} must be true or false, not "${v}"`,
    {
      position: at,
    },
  );
}

function parseInt10(v: string, key: string, spec: string, at?: SourcePosition, base = 10): number {
  const re = base === 8 ? /^[0-7]+$/ : /^\d+$/;
  if (!re.test(v)) {
    throw new KilnError('dockerfile', 'BAD_MOUNT', `--mount=${spec}: ${key}="${v}" is not a valid number`, {
      position: at,
      hint: base === 8 ? 'write the mode in octal, e.g. mode=0644' : `write ${key}=<non-negative integer>`,
    });
  }
  return parseInt(v, base);
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

/** Parses one `--mount` value. `index` numbers ssh mounts for their default target. */
export function parseRunMount(spec: string, at?: SourcePosition, index = 0): RunMountRequest {
  const kv = new Map<string, string>();
  for (const field of splitCsv(spec)) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    let key = (eq === -1 ? field : field.slice(0, eq)).trim().toLowerCase();
    key = ALIASES[key] ?? key;
    let value: string;
    if (eq === -1) {
      if (!BOOL_KEYS.has(key) && !BOOL_KEYS.has(field.toLowerCase())) {
        throw new KilnError(
          'dockerfile',
          'BAD_MOUNT',
          `--mount=${spec}: "${field}" must be a key=value pair`,
          {
            position: at,
            hint: 'e.g. --mount=type=cache,target=/root/.cache',
          },
        );
      }
      value = 'true';
    } else {
      value = field.slice(eq + 1);
    }
    kv.set(key, value);
  }
  const type = (kv.get('type') ?? 'bind').toLowerCase();
  const allowed = KEYS[type];
  if (!allowed) {
    throw new KilnError('dockerfile', 'BAD_MOUNT', `--mount=${spec}: unknown mount type "${type}"`, {
      position: at,
      hint: 'use one of bind, cache, secret, ssh, tmpfs',
    });
  }
  for (const key of kv.keys()) {
    if (!allowed.includes(key)) {
      const guess = closest(key, allowed);
      throw new KilnError(
        'dockerfile',
        'BAD_MOUNT',
        `--mount=${spec}: unexpected key "${key}" for type=${type}`,
        {
          position: at,
          hint: guess ? `did you mean ${guess}?` : `type=${type} takes ${allowed.join(', ')}`,
        },
      );
    }
  }
  const target = kv.get('target');
  const needTarget = (): string => {
    if (!target) {
      throw new KilnError('dockerfile', 'BAD_MOUNT', `--mount=${spec}: type=${type} needs a target`, {
        position: at,
        hint: `add target=<path in the container>`,
      });
    }
    return target;
  };
  const num = (key: string, dflt: number, base = 10): number =>
    kv.has(key) ? parseInt10(kv.get(key)!, key, spec, at, base) : dflt;
  const bool = (key: string, dflt: boolean): boolean =>
    kv.has(key) ? parseBool(kv.get(key)!, key, spec, at) : dflt;
  switch (type) {
    case 'bind':
      return {
        type: 'bind',
        target: needTarget(),
        source: kv.get('source') ?? '/',
        ...(kv.has('from') ? { from: kv.get('from')! } : {}),
        readwrite: bool('readwrite', false) || !bool('readonly', true),
      };
    case 'cache': {
      const sharing = (kv.get('sharing') ?? 'shared').toLowerCase();
      if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked') {
        throw new KilnError(
          'dockerfile',
          'BAD_MOUNT',
          `--mount=${spec}: sharing must be shared, private or locked`,
          {
            position: at,
          },
        );
      }
      const t = needTarget();
      return {
        type: 'cache',
        id: kv.get('id') ?? t,
        target: t,
        readonly: bool('readonly', false),
        sharing,
        ...(kv.has('from') ? { from: kv.get('from')! } : {}),
        ...(kv.has('source') ? { source: kv.get('source')! } : {}),
        mode: num('mode', 0o755, 8),
        uid: num('uid', 0),
        gid: num('gid', 0),
      };
    }
    case 'secret': {
      const id = kv.get('id') ?? (target ? posix.basename(target) : kv.get('env'));
      if (!id) {
        throw new KilnError(
          'dockerfile',
          'BAD_MOUNT',
          `--mount=${spec}: a secret mount needs an id (or a target)`,
          {
            position: at,
            hint: 'write --mount=type=secret,id=<name> and pass --secret id=<name>,src=<file>',
          },
        );
      }
      const env = kv.get('env');
      return {
        type: 'secret',
        id,
        ...(target ? { target } : env ? {} : { target: `/run/secrets/${id}` }),
        ...(env ? { env } : {}),
        required: bool('required', false),
        mode: num('mode', 0o400, 8),
        uid: num('uid', 0),
        gid: num('gid', 0),
      };
    }
    case 'ssh':
      return {
        type: 'ssh',
        id: kv.get('id') ?? 'default',
        target: target ?? `/run/buildkit/ssh_agent.${index}`,
        required: bool('required', false),
      };
    default: {
      const size = kv.get('size');
      return { type: 'tmpfs', target: needTarget(), ...(size ? { size: parseSize(size, spec, at) } : {}) };
    }
  }
}
