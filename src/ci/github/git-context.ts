/**
 * build-push-action's default context: the Git context of the workflow's commit
 * (`<server>/<owner>/<repo>.git#<ref>`), so a build works without actions/checkout. A pull request
 * names its merge ref (the merge commit exists only under that ref); anything else the commit sha.
 * `{{defaultContext}}` in context and build-contexts is replaced by it, as the action's handlebars
 * template does.
 */
export function defaultGitContext(env: NodeJS.ProcessEnv): string {
  const server = (env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, '');
  const repo = env.GITHUB_REPOSITORY ?? '';
  if (!repo) return '';
  const ref = env.GITHUB_REF ?? '';
  const sha = env.GITHUB_SHA ?? '';
  const at = ref.startsWith('refs/pull/') || !sha ? ref : sha;
  return `${server}/${repo}.git${at ? `#${at}` : ''}`;
}

export function expandDefaultContext(text: string, dflt: string): string {
  return text.replace(/\{\{\s*defaultContext\s*\}\}/g, dflt);
}
