/**
 * The GitHub Action's inputs, parsed once into a typed object. Every docker/build-push-action input
 * is here under its own name with its own list rule (lists.ts), then kiln's own inputs and the
 * redhat-actions/buildah-build ones that do not clash. Nothing here touches @actions/core, so it is
 * testable with a plain `get(name)` function; plan.ts turns the result into kiln argv.
 */
import type { IsolationChoice } from '../../options.ts';
import { KilnError } from '../../util/errors.ts';
import { parseBoolInput, parseList, splitArgs } from './lists.ts';

export interface ActionInputs {
  // docker/build-push-action
  addHosts: string[];
  allow: string[];
  annotations: string[];
  attests: string[];
  buildArgs: string[];
  buildContexts: string[];
  builder: string;
  cacheFrom: string[];
  cacheTo: string[];
  call: string;
  cgroupParent: string;
  /** '' means the Git context of the commit (resolved in plan.ts). */
  context: string;
  /** Dockerfile path; '' means `<context>/Dockerfile`. */
  file: string;
  labels: string[];
  load: boolean;
  network: string;
  noCache: boolean;
  noCacheFilters: string[];
  outputs: string[];
  platforms: string[];
  /** build-push-action's provenance/sbom inputs as given ('' = default). */
  provenance: string;
  pull: boolean;
  push: boolean;
  sbom: string;
  secrets: string[];
  secretEnvs: string[];
  secretFiles: string[];
  shmSize: string;
  ssh: string[];
  tags: string[];
  target: string;
  ulimit: string[];
  githubToken: string;
  // kiln
  sign: boolean;
  isolation: IsolationChoice;
  cache: boolean;
  cacheKey: string;
  cacheDir: string;
  cacheRepo: string;
  reproducible: boolean;
  registry: string;
  username: string;
  password: string;
  insecureRegistries: string[];
  extraArgs: string[];
  // redhat-actions/buildah-build
  image: string;
  /** '' = kiln's default (OCI media types); false = Docker v2s2 as buildah-build's default. */
  oci: '' | 'true' | 'false';
}

export type InputGetter = (name: string) => string;

function keyValueLines(name: string, items: string[]): string[] {
  items.forEach((item, i) => {
    const eq = item.indexOf('=');
    if (eq <= 0)
      throw new KilnError('usage', 'BAD_INPUT', `input ${name}: item ${i + 1} "${item}" is not KEY=VALUE`, {
        hint: `write one KEY=VALUE per line in ${name}`,
      });
  });
  return items;
}

const ISOLATIONS: readonly IsolationChoice[] = ['auto', 'rootless', 'chroot', 'plain'];
const PLATFORM_RE = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;

function platformsInput(get: InputGetter): string[] {
  const platforms = parseList(get('platforms'));
  for (const p of platforms)
    if (!PLATFORM_RE.test(p))
      throw new KilnError('usage', 'BAD_INPUT', `input platforms: "${p}" is not os/arch[/variant]`, {
        hint: 'write e.g. linux/amd64,linux/arm64',
      });
  return platforms;
}

/**
 * buildah-build's `image` + `tags`: tags are words (spaces separate them, which never clashes with
 * build-push-action's lines and commas: a reference has no spaces); a bare tag is put on `image`.
 */
function tagsInput(get: InputGetter, image: string): string[] {
  const words = parseList(get('tags')).flatMap((t) => t.split(/\s+/).filter(Boolean));
  if (!image) return words;
  if (words.length === 0) return [`${image}:latest`];
  return words.map((t) => (/[:/@]/.test(t) ? t : `${image}:${t}`));
}

function bpaInputs(get: InputGetter, image: string) {
  const g = (n: string): string => get(n).trim();
  return {
    addHosts: parseList(get('add-hosts')),
    allow: parseList(get('allow')),
    annotations: parseList(get('annotations'), true),
    attests: parseList(get('attests'), true),
    buildArgs: keyValueLines('build-args', parseList(get('build-args'), true)),
    buildContexts: parseList(get('build-contexts'), true),
    builder: g('builder'),
    cacheFrom: parseList(get('cache-from'), true),
    cacheTo: parseList(get('cache-to'), true),
    call: g('call'),
    cgroupParent: g('cgroup-parent'),
    context: g('context'),
    file: g('file'),
    labels: keyValueLines('labels', parseList(get('labels'), true)),
    load: parseBoolInput('load', get('load'), false),
    network: g('network'),
    noCache: parseBoolInput('no-cache', get('no-cache'), false),
    noCacheFilters: parseList(get('no-cache-filters')),
    outputs: parseList(get('outputs'), true),
    platforms: platformsInput(get),
    provenance: g('provenance'),
    pull: parseBoolInput('pull', get('pull'), false),
    push: parseBoolInput('push', get('push'), false),
    sbom: g('sbom'),
    secrets: parseList(get('secrets'), true),
    secretEnvs: parseList(get('secret-envs')),
    secretFiles: parseList(get('secret-files'), true),
    shmSize: g('shm-size'),
    ssh: parseList(get('ssh')),
    tags: tagsInput(get, image),
    target: g('target'),
    ulimit: parseList(get('ulimit'), true),
    githubToken: g('github-token'),
  };
}

/** Reads and validates every input; throws a usage KilnError naming the input on bad values. */
export function readInputs(get: InputGetter): ActionInputs {
  const g = (n: string): string => get(n).trim();
  const isolation = (g('isolation') || 'auto') as IsolationChoice;
  if (!ISOLATIONS.includes(isolation))
    throw new KilnError(
      'usage',
      'BAD_INPUT',
      `input isolation "${isolation}" is not one of ${ISOLATIONS.join(', ')}`,
      {
        hint: 'leave it at auto unless the runner needs a specific rung',
      },
    );
  const oci = g('oci');
  const image = g('image');
  return {
    ...bpaInputs(get, image),
    sign: parseBoolInput('sign', get('sign'), false),
    isolation,
    cache: parseBoolInput('cache', get('cache'), true),
    cacheKey: g('cache-key'),
    cacheDir: g('cache-dir'),
    cacheRepo: g('cache-repo'),
    reproducible: parseBoolInput('reproducible', get('reproducible'), false),
    registry: g('registry'),
    username: g('username'),
    password: get('password'),
    insecureRegistries: parseList(get('insecure-registries')),
    extraArgs: splitArgs(get('extra-args')),
    image,
    oci: oci === '' ? '' : parseBoolInput('oci', oci, false) ? 'true' : 'false',
  };
}
