/**
 * ActionInputs + the runner's environment → what the action does: `kiln build` argv (through the
 * flag table, so a renamed flag breaks the build, not a workflow), the cache to restore and save,
 * the exports to finish after the build (docker load, an OCI tarball), the values to mask and the
 * reports for inputs kiln cannot honour. Writes only into `facts.work` (a private directory): the
 * secret value files and the git token file. No @actions/* here.
 */
import { join, resolve } from 'node:path';
import { writeFileSync } from 'node:fs';
import { flagArgv, type FlagArgs } from '../../cli/argv.ts';
import { KilnError } from '../../util/errors.ts';
import type { ActionInputs } from './action-inputs.ts';
import { attestArgs } from './attest-inputs.ts';
import { cachePlan, exportPlan, type ExportPlan } from './exporters.ts';
import { defaultGitContext, expandDefaultContext } from './git-context.ts';
import { inputReports, type Report } from './reports.ts';
import { resolveSecrets } from './secrets.ts';

export interface PlanFacts {
  env: NodeJS.ProcessEnv;
  /** Private (0700) directory of this run: result files, secret files, the OCI layout. */
  work: string;
  /** RUNNER_TEMP (or the system temp dir): where the default cache directory lives. */
  temp: string;
}

export interface OutputFiles {
  digestFile: string;
  imageNameWithDigestFile: string;
  resultFile: string;
}

export interface GhaCache {
  /** Cache key prefix: cache-key input, plus the gha scope when cache-from/to name one. */
  prefix: string;
  restore: boolean;
  save: boolean;
}

export interface CacheSetup {
  /** kiln --cache-dir, when the build uses a local cache directory. */
  dir?: string;
  /** type=local,src= that differs from the directory used: copied in before the build. */
  seedFrom?: string;
  gha?: GhaCache;
  notes: Report[];
}

export interface ActionPlan {
  args: string[];
  reports: Report[];
  masks: string[];
  cache: CacheSetup;
  exports: ExportPlan;
  /** OCI layout directory kiln writes, to be tarred to exports.ociTarball. */
  ociLayoutTemp?: string;
  /** docker archive to `docker load` (exports.load). */
  loadArchive?: string;
  files: OutputFiles;
  context: string;
}

function cacheSetup(i: ActionInputs, temp: string): CacheSetup {
  const notes: Report[] = [];
  const explicit = i.cacheFrom.length > 0 || i.cacheTo.length > 0;
  if (i.noCache || i.noCacheFilters.length) {
    if (explicit && i.noCache)
      notes.push({
        level: 'notice',
        input: 'no-cache',
        message:
          'kiln neither reads nor writes its layer cache in this build: cache-from/cache-to are not used',
      });
    return { notes };
  }
  const defaultDir = (name: string): string => resolve(i.cacheDir || join(temp, name));
  if (!explicit)
    return i.cache
      ? {
          dir: defaultDir('kiln-cache'),
          gha: { prefix: i.cacheKey || 'kiln', restore: true, save: true },
          notes,
        }
      : { notes };
  const cp = cachePlan(i.cacheFrom, i.cacheTo);
  for (const message of cp.notes) notes.push({ level: 'warning', input: message.split(' ')[0]!, message });
  const out: CacheSetup = { notes };
  if (cp.local) {
    out.dir = resolve(cp.local.dest ?? join(temp, 'kiln-cache-local'));
    if (cp.local.src && resolve(cp.local.src) !== out.dir) out.seedFrom = resolve(cp.local.src);
  }
  if (cp.gha) {
    out.dir ??= defaultDir(`kiln-cache-${cp.gha.scope}`);
    out.gha = {
      prefix: `${i.cacheKey || 'kiln'}-${cp.gha.scope}`,
      restore: cp.gha.restore,
      save: cp.gha.save,
    };
  }
  return out;
}

function registryCache(i: ActionInputs): Pick<FlagArgs, 'cacheRepo' | 'noPushCache'> {
  if (i.noCache || i.noCacheFilters.length) return {};
  const cp = i.cacheFrom.length || i.cacheTo.length ? cachePlan(i.cacheFrom, i.cacheTo) : { notes: [] };
  const repo = cp.registry?.ref ?? i.cacheRepo;
  if (!repo) return {};
  return { cacheRepo: repo, ...(cp.registry && !cp.registry.push ? { noPushCache: true } : {}) };
}

/** The token for the Git context: a GIT_AUTH_TOKEN secret the user gave wins over github-token. */
function gitToken(
  i: ActionInputs,
  context: string,
  dflt: string,
  secretFiles: Record<string, string>,
  work: string,
): FlagArgs {
  if (!/^https?:\/\//i.test(context)) return {};
  const host = new URL(context.split('#')[0]!).host;
  const given = secretFiles[`GIT_AUTH_TOKEN.${host}`] ?? secretFiles.GIT_AUTH_TOKEN;
  if (given) return { gitTokenFile: given, gitTokenUser: 'x-access-token' };
  if (!i.githubToken || i.githubToken.startsWith('${{') || !dflt || !context.startsWith(dflt.split('#')[0]!))
    return {};
  const file = join(work, 'git-token');
  writeFileSync(file, i.githubToken, { mode: 0o600 });
  return { gitTokenFile: file, gitTokenUser: 'x-access-token' };
}

export function planAction(i: ActionInputs, facts: PlanFacts): ActionPlan {
  const reports = inputReports(i);
  const exports = exportPlan(i.push, i.load, i.outputs);
  if (exports.push && i.tags.length === 0)
    throw new KilnError('usage', 'BAD_INPUT', 'input push is true but tags is empty', {
      hint: 'set tags (one image reference per line, e.g. from docker/metadata-action) or push: false',
    });
  const dflt = defaultGitContext(facts.env);
  const context = i.context ? expandDefaultContext(i.context, dflt) : dflt || '.';
  const secrets = resolveSecrets(i, facts.work);
  const cache = cacheSetup(i, facts.temp);
  const files: OutputFiles = {
    digestFile: join(facts.work, 'digest'),
    imageNameWithDigestFile: join(facts.work, 'image-name-with-digest'),
    resultFile: join(facts.work, 'result.json'),
  };
  const ociLayoutTemp =
    exports.ociTarball && !exports.ociLayoutDir ? join(facts.work, 'oci-layout') : undefined;
  const loadArchive = exports.load && !exports.dockerArchive ? join(facts.work, 'load.tar') : undefined;
  const attestFacts = {
    provenance: i.provenance,
    sbom: i.sbom,
    attests: i.attests,
    exportsImage: exports.push || Boolean(exports.ociLayoutDir || exports.ociTarball),
    dockerExporter: exports.dockerExporter,
    env: facts.env,
  };
  const values: FlagArgs = {
    context,
    ...(i.file ? { dockerfile: i.file } : {}),
    destination: i.tags,
    buildArg: i.buildArgs,
    ...(i.target ? { target: i.target } : {}),
    ...(exports.push ? {} : { noPush: true }),
    label: i.labels,
    annotation: i.annotations,
    secret: secrets.flags,
    ...(i.buildContexts.length
      ? { buildContext: i.buildContexts.map((c) => expandDefaultContext(c, dflt)) }
      : {}),
    ...gitToken(i, context, dflt, secrets.files, facts.work),
    ...(i.platforms.length ? { platform: [i.platforms.join(',')] } : {}),
    isolation: i.isolation,
    ...(i.network && i.network !== 'default' ? { network: i.network as 'none' | 'host' } : {}),
    ...(cache.dir || registryCache(i).cacheRepo ? { cache: true } : {}),
    ...(cache.dir ? { cacheDir: cache.dir } : {}),
    ...registryCache(i),
    ...(exports.dockerArchive || loadArchive ? { tarPath: exports.dockerArchive ?? loadArchive } : {}),
    ...(exports.ociLayoutDir || ociLayoutTemp
      ? { ociLayoutPath: exports.ociLayoutDir ?? ociLayoutTemp }
      : {}),
    ...(i.oci === 'false' ? { format: 'docker' as const } : {}),
    ...(i.reproducible ? { reproducible: true } : {}),
    attest: attestArgs(attestFacts),
    ...(i.sign ? { sign: true } : {}),
    insecureRegistry: i.insecureRegistries,
    ...files,
  };
  return {
    args: [...flagArgv(values), ...i.extraArgs],
    reports: [...reports, ...cache.notes],
    masks: secrets.values,
    cache,
    exports,
    ...(ociLayoutTemp ? { ociLayoutTemp } : {}),
    ...(loadArchive ? { loadArchive } : {}),
    files,
    context,
  };
}
