/**
 * Named build contexts (`--build-context name=value`, build-push-action's `build-contexts`), as
 * BuildKit defines them: `FROM name`, `COPY --from=name` and `RUN --mount from=name` read the named
 * context instead of a stage or image of that name, and a stage of the same name is overridden.
 * Two kinds are supported: an image (`docker-image://ref`) and a local directory (a path). The
 * other forms BuildKit accepts are refused with what to write instead, never read as a path.
 */
import { resolve } from 'node:path';
import { statSync } from 'node:fs';
import { KilnError } from '../util/errors.ts';
import type { NamedContext } from '../options.ts';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-/:]*$/;

/** `name=value` → [lowercased name, context]; a relative path is taken from `cwd`. */
export function parseNamedContext(
  spec: string,
  cwd: string,
  what = '--build-context',
): [string, NamedContext] {
  const eq = spec.indexOf('=');
  const name = eq > 0 ? spec.slice(0, eq).trim() : '';
  const value = eq > 0 ? spec.slice(eq + 1).trim() : '';
  const bad = (msg: string, hint: string): KilnError =>
    new KilnError('usage', 'BAD_FLAG_VALUE', `${what} ${spec}: ${msg}`, { hint });
  if (!name || !value || !NAME.test(name))
    throw bad('not name=value', 'write name=docker-image://ref or name=/path/to/dir');
  if (value.startsWith('docker-image://')) {
    const ref = value.slice('docker-image://'.length);
    if (!ref) throw bad('docker-image:// needs an image reference', 'write name=docker-image://alpine:3.20');
    return [name.toLowerCase(), { kind: 'image', ref }];
  }
  for (const [prefix, instead] of [
    [
      'oci-layout://',
      'push the layout to a registry (skopeo copy oci:DIR docker://…) and use docker-image://',
    ],
    ['target:', 'a bake target is a buildx bake feature; build that target first and use docker-image://'],
    ['input:', 'an input of a bake definition is a buildx bake feature'],
  ] as const) {
    if (value.startsWith(prefix)) throw bad(`${prefix} contexts are not supported by kiln`, instead);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || /^git@/.test(value))
    throw bad(
      'remote (Git or HTTP) named contexts are not supported by kiln',
      'check it out or download it into a directory first, and pass that directory',
    );
  const path = resolve(cwd, value);
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw bad(`${path} is not a directory`, 'a local named context is a directory');
  return [name.toLowerCase(), { kind: 'dir', path }];
}

/** Several specs into one map; a name given twice is an error (BuildKit keeps one silently). */
export function parseNamedContexts(
  specs: readonly string[],
  cwd: string,
  what?: string,
): Record<string, NamedContext> {
  const out: Record<string, NamedContext> = {};
  for (const s of specs) {
    const [name, ctx] = parseNamedContext(s, cwd, what);
    if (Object.hasOwn(out, name))
      throw new KilnError('usage', 'BAD_FLAG_VALUE', `${what ?? '--build-context'}: ${name} is given twice`, {
        hint: 'give each named context once',
      });
    out[name] = ctx;
  }
  return out;
}
