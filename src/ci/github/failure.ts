/**
 * What a failed `kiln build` becomes in the job: one ::error annotation with the message, its hint
 * and the RUN's last output lines (every masked value replaced by ***), placed on the Dockerfile's
 * file and line when kiln's message starts with `<file>:<line>:`.
 */
import { basename, isAbsolute, relative, resolve } from 'node:path';

/** The `error: ...` block kiln printed last: its message, hint and the indented lines under it. */
export function lastKilnError(stderr: string): string {
  const lines = stderr.replace(/\r/g, '').split('\n');
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/^(error|internal error): /.test(lines[i]!)) {
      start = i;
      break;
    }
  }
  if (start === -1) {
    return (
      lines
        .filter((l) => l.trim() !== '')
        .slice(-1)[0]
        ?.trim() ?? ''
    );
  }
  const out = [lines[start]!.replace(/^error: /, '')];
  for (const l of lines.slice(start + 1)) {
    // The hint and the output tail under it (`hint: last output:` then 4-space indented lines).
    if (/^\s+\S/.test(l)) out.push(l.replace(/^ {2}/, ''));
    else break;
  }
  return out.join('\n');
}

export function redact(text: string, values: string[]): string {
  let out = text;
  for (const v of [...values].sort((a, b) => b.length - a.length))
    if (v.length >= 3) out = out.split(v).join('***');
  return out;
}

export interface AnnotationPlace {
  file?: string;
  startLine?: number;
}

/**
 * file= and line= for the annotation: kiln names the Dockerfile as it read it; the annotation wants
 * a path relative to the workspace, which `dockerfile` (the local path, when there is one) gives.
 */
export function placeOf(message: string, dockerfile: string | null, workspace: string): AnnotationPlace {
  const m = /^([^\s:][^:\n]*):(\d+)(?::\d+)?: /.exec(message);
  if (!m) return {};
  const named = m[1]!;
  const line = Number(m[2]);
  let file = named;
  if (
    dockerfile &&
    (named === dockerfile ||
      basename(named) === basename(dockerfile) ||
      resolve(named) === resolve(dockerfile))
  )
    file = dockerfile;
  if (isAbsolute(file) || file.startsWith('.')) {
    const rel = relative(workspace, resolve(file));
    if (!rel.startsWith('..')) file = rel;
  }
  return { file, startLine: line };
}
