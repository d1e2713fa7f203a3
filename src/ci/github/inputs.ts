/**
 * kiln's first input set (push on by default, kiln's `id=,src=` secrets), parsed into
 * a typed object and turned into `kiln build` argv. The GitLab component's job script reads its
 * template variables through it; the GitHub Action itself reads build-push-action's inputs in
 * action-inputs.ts.
 * List inputs follow docker/build-push-action: one item per line, or comma separated where commas
 * cannot be part of a value (tags, platforms), CSV quoting ("a,b") honoured, `#` lines ignored.
 * Nothing here touches @actions/core, so it is testable with a plain `get(name)` function.
 */
import { flagArgv } from '../../cli/argv.ts';
import { parseSecretFlag } from '../../cli/flag-values.ts';
import type { IsolationChoice } from '../../options.ts';
import { KilnError } from '../../util/errors.ts';
import { parseBoolInput, parseList, splitArgs } from './lists.ts';

export { parseBoolInput, parseList, splitArgs, splitCsvLine } from './lists.ts';

export interface ActionInputs {
  context: string;
  /** Dockerfile path; '' means `<context>/Dockerfile`. */
  file: string;
  tags: string[];
  buildArgs: string[];
  target: string;
  push: boolean;
  /** build-push-action's provenance/sbom inputs as kiln --attest values ('' = none). */
  provenance: string;
  sbom: string;
  sign: boolean;
  labels: string[];
  secrets: string[];
  /** Empty: the host's platform. */
  platforms: string[];
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

/** Reads and validates every input; throws a usage KilnError naming the input on bad values. */
export function readInputs(get: InputGetter): ActionInputs {
  const g = (n: string): string => get(n).trim();
  // build-push-action's syntax: a comma or newline list; several build one image index.
  const platforms = parseList(get('platforms'));
  for (const p of platforms)
    if (!/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(p))
      throw new KilnError('usage', 'BAD_INPUT', `input platforms "${p}" is not os/arch[/variant]`, {
        hint: 'write e.g. linux/amd64 or linux/amd64,linux/arm64',
      });
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
  const secrets = parseList(get('secrets'), true);
  for (const s of secrets) {
    try {
      parseSecretFlag(s);
    } catch (e) {
      throw new KilnError(
        'usage',
        'BAD_INPUT',
        `input secrets: "${s}" is not id=<id>,src=<file> or id=<id>,env=<VAR>`,
        {
          hint: 'write one secret per line, e.g. id=npmrc,src=${{ runner.temp }}/npmrc',
          cause: e,
        },
      );
    }
  }
  const tags = parseList(get('tags'));
  const push = parseBoolInput('push', get('push'), true);
  if (push && tags.length === 0)
    throw new KilnError('usage', 'BAD_INPUT', 'input tags is empty but push is true', {
      hint: 'set tags (one image reference per line) or push: false',
    });
  return {
    provenance: attestInput('provenance', g('provenance'), push),
    sbom: attestInput('sbom', g('sbom'), false),
    sign: parseBoolInput('sign', get('sign'), false),
    context: g('context') || '.',
    file: g('file'),
    tags,
    buildArgs: keyValueLines('build-args', parseList(get('build-args'), true)),
    target: g('target'),
    push,
    labels: keyValueLines('labels', parseList(get('labels'), true)),
    secrets,
    platforms,
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
  };
}

/**
 * build-push-action's `provenance` / `sbom`: empty is the default (provenance mode=min when the
 * image is pushed, as buildx adds it; no SBOM), true/false, or BuildKit attest parameters
 * (`mode=max`, `generator=...`).
 */
function attestInput(name: 'provenance' | 'sbom', v: string, dflt: boolean): string {
  const type = `type=${name}`;
  if (v === '') return dflt ? type : '';
  if (/^(true|1)$/i.test(v)) return type;
  if (/^(false|0)$/i.test(v)) return '';
  return `${type},${v}`;
}

export interface OutputFiles {
  digestFile: string;
  imageNameWithDigestFile: string;
  resultFile: string;
  /** The cache directory (when inputs.cache) after defaults were applied. */
  cacheDir?: string;
}

/** `kiln build` argv (after `build`) for the inputs, written through the flag table. Credentials never go into argv. */
export function toKilnArgs(inputs: ActionInputs, files: OutputFiles): string[] {
  const args = flagArgv({
    context: inputs.context,
    ...(inputs.file ? { dockerfile: inputs.file } : {}),
    destination: inputs.tags,
    buildArg: inputs.buildArgs,
    ...(inputs.target ? { target: inputs.target } : {}),
    ...(inputs.push ? {} : { noPush: true }),
    label: inputs.labels,
    secret: inputs.secrets,
    ...(inputs.platforms.length ? { platform: inputs.platforms } : {}),
    isolation: inputs.isolation,
    ...(inputs.cache || inputs.cacheRepo ? { cache: true } : {}),
    ...(inputs.cache && files.cacheDir ? { cacheDir: files.cacheDir } : {}),
    ...(inputs.cacheRepo ? { cacheRepo: inputs.cacheRepo } : {}),
    ...(inputs.reproducible ? { reproducible: true } : {}),
    attest: [inputs.provenance, inputs.sbom].filter((a) => a !== ''),
    ...(inputs.sign ? { sign: true } : {}),
    insecureRegistry: inputs.insecureRegistries,
    digestFile: files.digestFile,
    imageNameWithDigestFile: files.imageNameWithDigestFile,
    resultFile: files.resultFile,
  });
  return [...args, ...inputs.extraArgs];
}
