/**
 * Where the component pushes when `destinations` is empty: GitLab's Kaniko/Buildah docs and
 * to-be-continuous tag the job's repository ($CI_REGISTRY_IMAGE, or the `repository` input) with the
 * short commit sha, the Git tag on tag pipelines and `latest` on the default branch; the ref slug
 * is an opt-in. Each rule has a boolean input so a project can turn it off.
 */
import { parseList, parseBoolInput } from '../github/inputs.ts';
import { KilnError } from '../../util/errors.ts';

type Env = NodeJS.ProcessEnv;

/** The template's tag rules: variable, input name (for messages) and default. */
const RULES = [
  ['KILN_TAG_COMMIT_SHA', 'tag-commit-sha', true],
  ['KILN_TAG_COMMIT_TAG', 'tag-commit-tag', true],
  ['KILN_TAG_LATEST', 'tag-latest', true],
  ['KILN_TAG_REF_SLUG', 'tag-ref-slug', false],
] as const;

function rule(env: Env, i: number): boolean {
  const [variable, input, dflt] = RULES[i]!;
  return parseBoolInput(input, env[variable] ?? '', dflt);
}

/** The default tags for this pipeline, in order, without duplicates. */
export function defaultTags(env: Env): string[] {
  const [sha, gitTag, latest, refSlug] = RULES.map((_, i) => rule(env, i));
  const tags: string[] = [];
  if (sha && env.CI_COMMIT_SHORT_SHA) tags.push(env.CI_COMMIT_SHORT_SHA);
  if (gitTag && env.CI_COMMIT_TAG) tags.push(env.CI_COMMIT_TAG);
  // CI_COMMIT_BRANCH is unset on tag and merge request pipelines: latest follows the default branch only.
  if (latest && env.CI_COMMIT_BRANCH && env.CI_COMMIT_BRANCH === env.CI_DEFAULT_BRANCH) tags.push('latest');
  if (refSlug && env.CI_COMMIT_REF_SLUG) tags.push(env.CI_COMMIT_REF_SLUG);
  return [...new Set(tags)];
}

/**
 * Destinations: KILN_DESTINATIONS when given (separated by spaces, commas or newlines), else the
 * default tags on KILN_REPOSITORY (default $CI_REGISTRY_IMAGE). Empty when there is nowhere to push.
 */
export function destinations(env: Env): string[] {
  const given = parseList((env.KILN_DESTINATIONS ?? '').replace(/[ \t]+/g, '\n'));
  if (given.length) return given;
  const repository = (env.KILN_REPOSITORY ?? '').trim() || env.CI_REGISTRY_IMAGE || '';
  if (!repository) return [];
  if (/[@\s]|:[^/]*$/.test(repository))
    throw new KilnError('usage', 'BAD_INPUT', `input repository "${repository}" is not a repository name`, {
      hint: 'give the image name without a tag or digest (e.g. $CI_REGISTRY_IMAGE/app), or set destinations',
    });
  return defaultTags(env).map((t) => `${repository}:${t}`);
}
