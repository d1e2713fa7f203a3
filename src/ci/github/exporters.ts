/**
 * build-push-action's `outputs` / `push` / `load` and `cache-from` / `cache-to`, parsed as buildx
 * parses them (CSV `key=value` attributes; a bare value is a registry reference), into what kiln
 * does for each: a push, a docker archive, an OCI layout, a `docker load`, the Actions cache, a
 * cache directory, a cache repository. What kiln cannot produce is a usage error naming the input.
 */
import { KilnError } from '../../util/errors.ts';
import { splitCsvLine } from './lists.ts';

export type Attrs = Record<string, string>;

/** `type=x,a=b,...` → attributes; a value without `=` is `ref` (buildx: `user/app:cache`). */
export function parseAttrs(item: string): Attrs {
  const out: Attrs = {};
  for (const field of splitCsvLine(item)) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    if (eq === -1) {
      if (Object.keys(out).length === 0 && !item.includes('=')) return { type: 'registry', ref: field };
      out[field] = 'true';
    } else out[field.slice(0, eq).trim().toLowerCase()] = field.slice(eq + 1).trim();
  }
  return out;
}

const isTrue = (v: string | undefined): boolean => v !== undefined && /^(true|1)$/i.test(v);

export interface ExportPlan {
  push: boolean;
  /** docker-archive tarball (type=docker,dest=). */
  dockerArchive?: string;
  /** OCI layout directory (type=oci,dest=,tar=false). */
  ociLayoutDir?: string;
  /** OCI layout as a tarball (type=oci,dest=), as buildx writes it. */
  ociTarball?: string;
  /** `docker load` the image after the build (load: true, type=docker without dest). */
  load: boolean;
  /** The docker exporter is in use (buildx then adds no default provenance). */
  dockerExporter: boolean;
}

function usage(input: string, msg: string, hint: string): KilnError {
  return new KilnError('usage', 'BAD_INPUT', `input ${input}: ${msg}`, { hint });
}

/** `push`, `load` and `outputs` → what the build writes. */
export function exportPlan(push: boolean, load: boolean, outputs: string[]): ExportPlan {
  const plan: ExportPlan = { push, load, dockerExporter: load };
  for (const item of outputs) {
    const a = parseAttrs(item);
    const type = a.type ?? '';
    const dest = a.dest ?? '';
    if (dest === '-')
      throw usage('outputs', `${type} to stdout (dest=-) is not supported`, 'give dest=<file>');
    if (type === 'registry') plan.push = true;
    else if (type === 'image') plan.push ||= isTrue(a.push);
    else if (type === 'docker') {
      plan.dockerExporter = true;
      if (dest) plan.dockerArchive = dest;
      else plan.load = true;
    } else if (type === 'oci') {
      if (!dest) throw usage('outputs', 'type=oci needs dest=<file>', 'write type=oci,dest=image.tar');
      if (a.tar !== undefined && !isTrue(a.tar)) plan.ociLayoutDir = dest;
      else plan.ociTarball = dest;
    } else if (type === 'cacheonly') continue;
    else if (type === 'tar' || type === 'local')
      throw usage(
        'outputs',
        `type=${type} (the image's files, not an image) is not something kiln writes`,
        'use type=oci,dest=<file> or type=docker,dest=<file> and unpack that (umoci, skopeo), or COPY the files out in a later step',
      );
    else
      throw usage(
        'outputs',
        `unknown exporter "${type}"`,
        'use type=registry, type=image,push=true, type=docker[,dest=], type=oci,dest=',
      );
  }
  return plan;
}

export interface CachePlan {
  /** GitHub Actions cache: restore before, save after (the kiln layer cache directory). */
  gha?: { scope: string; restore: boolean; save: boolean };
  /** kiln --cache-repo (type=registry,ref=); `push` false for cache-from only. */
  registry?: { ref: string; push: boolean };
  /** kiln --cache-dir (type=local): read from `src`, written to `dest`. */
  local?: { src?: string; dest?: string };
  /** Notes for the log (mode=min, ignore-error, and the like). */
  notes: string[];
}

function addRegistry(plan: CachePlan, input: string, ref: string, push: boolean): void {
  if (!ref)
    throw usage(input, 'type=registry needs ref=<repository>', 'write type=registry,ref=ghcr.io/o/app:cache');
  // kiln keys its cached layers by digest-like tags in one repository: the tag part of a buildx
  // cache ref names nothing separate there.
  const repo = ref.replace(/(?<=\/[^/]*):[^/@]+$/, '');
  if (plan.registry && plan.registry.ref !== repo)
    throw usage(
      input,
      `two cache repositories (${plan.registry.ref}, ${repo})`,
      'kiln reads and writes one cache repository: give the same ref in cache-from and cache-to',
    );
  plan.registry = { ref: repo, push: push || (plan.registry?.push ?? false) };
}

/** `cache-from` and `cache-to` → the cache kiln uses. */
export function cachePlan(from: string[], to: string[]): CachePlan {
  const plan: CachePlan = { notes: [] };
  const each = (input: 'cache-from' | 'cache-to', items: string[]): void => {
    const writing = input === 'cache-to';
    for (const item of items) {
      const a = parseAttrs(item);
      const type = a.type ?? 'registry';
      if (writing && a.mode === 'min')
        plan.notes.push(`${input} mode=min: kiln caches every step's layer (as mode=max does)`);
      if (type === 'gha') {
        const scope = a.scope || 'buildkit';
        if (plan.gha && plan.gha.scope !== scope)
          throw usage(
            input,
            `two gha scopes (${plan.gha.scope}, ${scope})`,
            'use one scope for cache-from and cache-to',
          );
        plan.gha = {
          scope,
          restore: (plan.gha?.restore ?? false) || !writing,
          save: (plan.gha?.save ?? false) || writing,
        };
      } else if (type === 'registry') addRegistry(plan, input, a.ref ?? '', writing);
      else if (type === 'local') {
        const dir = writing ? a.dest : a.src;
        if (!dir)
          throw usage(
            input,
            `type=local needs ${writing ? 'dest' : 'src'}=<dir>`,
            `write type=local,${writing ? 'dest' : 'src'}=/tmp/cache`,
          );
        plan.local = { ...plan.local, [writing ? 'dest' : 'src']: dir };
      } else if (type === 'inline')
        plan.notes.push(
          `${input} type=inline: kiln keeps no cache metadata inside the image; use type=registry,ref=<repo> for a shared cache`,
        );
      else
        throw usage(
          input,
          `cache type "${type}" is not supported`,
          'kiln reads and writes type=gha, type=registry,ref=, type=local',
        );
    }
  };
  each('cache-from', from);
  each('cache-to', to);
  return plan;
}
