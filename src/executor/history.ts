/**
 * `created_by` strings for image history, in BuildKit's wording so `docker history` of a kiln
 * image reads like one built by Docker: layer-making steps end in ` # buildkit`.
 */
import { PROXY_ARGS } from '../plan/scope.ts';

export function isProxyArg(name: string): boolean {
  return PROXY_ARGS.includes(name);
}

/**
 * `RUN |2 A=1 B=2 /bin/sh -c make`: the build args the step could see, as BuildKit records them.
 * Proxy args stay out, since they often carry credentials; secrets never get here at all.
 */
export function runHistory(argv: string[], args: Array<[string, string]>): string {
  const visible = args.filter(([k]) => !isProxyArg(k));
  const prefix =
    visible.length > 0 ? `|${visible.length} ${visible.map(([k, v]) => `${k}=${v}`).join(' ')} ` : '';
  return `RUN ${prefix}${argv.join(' ')} # buildkit`;
}

/** Go's `%q` list formatting, as BuildKit prints CMD/ENTRYPOINT/SHELL/VOLUME lists. */
export function goQuotedList(items: string[]): string {
  return `[${items.map((s) => JSON.stringify(s)).join(' ')}]`;
}

export function layerHistory(text: string): string {
  return `${text} # buildkit`;
}
