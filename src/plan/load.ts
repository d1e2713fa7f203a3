/**
 * Finds and reads the Dockerfile the way Kaniko does: `-` is stdin, an existing path is used as
 * given, otherwise the path is taken relative to the context directory. When the default name
 * (`Dockerfile`) is found nowhere, `<context>/Containerfile` is used, buildah's rule.
 */
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { KilnError } from '../util/errors.ts';

export interface LoadedDockerfile {
  /** Path as shown in messages (relative to the cwd when possible). */
  path: string;
  text: string;
}

async function exists(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function loadDockerfile(contextDir: string, dockerfile: string): Promise<LoadedDockerfile> {
  if (dockerfile === '-') return { path: '-', text: await readStdin() };
  const paths = isAbsolute(dockerfile) ? [dockerfile] : [dockerfile, join(contextDir, dockerfile)];
  if (dockerfile === 'Dockerfile') paths.push(join(contextDir, 'Containerfile'));
  // The cwd is often the context: `Dockerfile` and `<context>/Dockerfile` are then one file.
  const candidates = [...new Map(paths.map((p) => [resolve(p), p])).entries()];
  for (const [, c] of candidates) {
    if (await exists(c)) return { path: c, text: await readFile(c, 'utf8') };
  }
  const looked = candidates.map(([abs]) => abs);
  const list = looked.length > 1 ? `${looked.slice(0, -1).join(', ')} and ${looked.at(-1)!}` : looked[0]!;
  throw new KilnError('context', 'DOCKERFILE_NOT_FOUND', `Dockerfile not found: ${dockerfile}`, {
    hint: `looked at ${list}; pass --dockerfile <path> (relative to the context or absolute)`,
  });
}
